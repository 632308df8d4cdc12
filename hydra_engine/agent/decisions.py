"""Experiments and the decision on them: run a batch, gate each result, register and promote the best.

Whether the winner is promoted, left awaiting approval or held depends on the autonomy level;
every experiment's end is journalled and fed back to the playbook.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hydra_engine.agent.core import AgentCore, AgentPhase
from hydra_engine.agent.diagnose import Diagnosis
from hydra_engine.agent.experiments import ExperimentJob, ExperimentResult
from hydra_engine.agent.hypotheses import Hypothesis
from hydra_engine.agent.observe import CycleInputs
from hydra_engine.agent.promotion import CandidateEvaluation, evaluate_result
from hydra_engine.agent.state import AutonomyLevel
from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.registry import RegistryError

__all__ = ["DecisionMixin", "ExperimentOutcome"]


@dataclass(frozen=True, slots=True)
class ExperimentOutcome:
    """One experiment's end: status from the executor, outcome from the gate and the decision."""

    experiment_id: str
    hypothesis_key: str
    status: str
    """OK, ERROR, TIMEOUT or ABANDONED."""
    outcome: str
    """promoted, awaiting_approval, failed_gate, not_selected, error, timeout, abandoned, held."""
    duration_s: float
    candidate_version: str | None = None
    gate: dict[str, Any] | None = None
    error: str | None = None
    log_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


class DecisionMixin(AgentCore):
    """Experiment batches and promotion decisions for ``AgentLoop``."""

    async def _experiment_batch(self, day: dt.date, cid: str, champion: str | None, spec: ModelSpec, hyps: list[Hypothesis],
                                inputs: CycleInputs, diagnosis: Diagnosis | None) -> list[ExperimentOutcome]:
        iso = day.isoformat()
        cycle_dir = self.work_dir / cid
        inputs_path = await self.write_inputs(inputs, cycle_dir)
        jobs: list[tuple[Hypothesis, ExperimentJob]] = []
        champion_dir = str(self.registry.models_dir / (await self.registry.get(champion)).path) if champion else None
        for h in hyps:
            params = {"candidate_spec": h.apply(spec.to_dict()), "champion_model_dir": champion_dir}
            job = self.make_job(self.new_id("exp"), params, inputs_path, cycle_dir)
            await self.journal.start_experiment(job.experiment_id, h.key, diagnosis=diagnosis.kind.value if diagnosis else "bootstrap",
                                                config_diff=h.config_diff, trading_date=iso, cycle_id=cid, log_path=str(job.log_path))
            jobs.append((h, job))
        async with self._state_lock:
            self.state.trials_since_promotion += len(jobs)
            await self._save()
        results = await asyncio.gather(*(self.executor.run(job) for _, job in jobs))
        self._set_phase(AgentPhase.EVALUATING)
        n_trials = self.state.trials_since_promotion
        evaluated: list[tuple[Hypothesis, ExperimentResult, CandidateEvaluation | None]] = []
        for (h, job), res in zip(jobs, results):
            ev = None
            if res.ok and champion is not None:
                ev = await asyncio.to_thread(evaluate_result, job.experiment_id, res.result or {}, n_trials, list(self.state.trial_sharpes), self.config.gate)
                if ev.candidate_sharpe_daily is not None:
                    self.state.trial_sharpes = [*self.state.trial_sharpes, ev.candidate_sharpe_daily][-500:]
            evaluated.append((h, res, ev))
        passing = [(h, r, e) for h, r, e in evaluated if r.ok and (champion is None or (e is not None and e.passed))]
        best = min(passing, key=lambda t: (t[1].result or {}).get("candidate", {}).get("oos_log_loss") or np.inf) if passing else None
        outcomes = []
        for h, res, ev in evaluated:
            status = res.status.value
            if not res.ok:
                outcome = status.lower()
            elif best is not None and res is best[1]:
                outcome = "selected"
            elif ev is not None and ev.passed:
                outcome = "not_selected"
            else:
                outcome = "failed_gate"
            version = None
            if outcome == "selected":
                outcome, version = await self._decide(day, cid, champion, h, res, ev)
            metrics = {"evaluation": ev.to_dict() if ev else None, "candidate": (res.result or {}).get("candidate", {}).get("summary", {}).get("overall"),
                       "champion": ((res.result or {}).get("champion") or {}).get("summary", {}).get("overall")}
            await self.journal.finish_experiment(res.experiment_id, status=status, outcome=outcome, metrics=metrics, error=res.error,
                                                 duration_s=res.duration_s, candidate_version=version)
            summary = f"{h.kind} {status.lower()} in {res.duration_s:.1f} s: {outcome}"
            if ev is not None and ev.gate is not None and not ev.gate.passed:
                summary += f" ({'; '.join(ev.gate.reasons)})"
            if res.error:
                summary += f": {res.error.strip().splitlines()[-1][:200]}"
            await self.journal.record("experiment", summary, trading_date=iso, cycle_id=cid, outcome=outcome,
                                      payload={"experiment_id": res.experiment_id, "hypothesis": h.to_dict(), "status": status, "duration_s": res.duration_s,
                                               "metrics": metrics, "error": res.error, "log_path": res.log_path, "candidate_version": version})
            if outcome not in ("promoted", "awaiting_approval"):
                self.playbook.record(h.key, {"failed_gate": "rejected"}.get(outcome, outcome), day)
            outcomes.append(ExperimentOutcome(res.experiment_id, h.key, status, outcome, res.duration_s, version,
                                              ev.gate.to_dict() if ev and ev.gate else None, res.error, res.log_path))
        async with self._state_lock:
            await self._save()
        return outcomes

    async def _decide(self, day: dt.date, cid: str, champion: str | None, h: Hypothesis, res: ExperimentResult,
                      ev: CandidateEvaluation | None) -> tuple[str, str | None]:
        """Register the winning candidate, then promote it or leave it awaiting approval."""
        iso, result = day.isoformat(), res.result or {}
        try:
            model = await asyncio.to_thread(BaselineModel.load, result["model_dir"])
            daily = result.get("daily", {})
            metrics = {"agent_oos_daily": {"log_loss": daily.get("candidate_log_loss", []), "hit": daily.get("candidate_hit", []),
                                           "return": daily.get("candidate_return", [])},
                       "in_sample_log_loss": result.get("in_sample_log_loss"), "walk_forward": result.get("candidate", {}).get("summary"),
                       "gate": ev.gate.to_dict() if ev and ev.gate else None, "experiment_id": res.experiment_id}
            version = await self.registry.register(model, metrics, parent=champion, mutation=h.key)
        except (KeyError, OSError, ValueError, RegistryError) as exc:
            await self.journal.record("error", f"cannot register candidate of {res.experiment_id}: {exc}", trading_date=iso, cycle_id=cid, outcome="register_failed")
            return "error", None
        info = {"version": version, "experiment_id": res.experiment_id, "hypothesis_key": h.key, "trading_date": iso, "previous": champion,
                "gate": ev.gate.to_dict() if ev and ev.gate else None}
        async with self._state_lock:
            level = self.state.autonomy
            if level is AutonomyLevel.AUTONOMOUS and not self.state.paused:
                await self.registry.promote(version, reason=f"agent: {h.key}")
                self._after_promotion(version, champion, info)
                outcome = "promoted"
            elif level is AutonomyLevel.SUPERVISED or (level is AutonomyLevel.AUTONOMOUS and self.state.paused):
                self.state.pending = info
                outcome = "awaiting_approval"
            else:
                outcome = "held"
            await self._save()
        text = {"promoted": f"promoted {version} (was {champion}); it trades from the next signal",
                "awaiting_approval": f"{version} passed the gate and awaits operator approval",
                "held": f"{version} passed the gate but autonomy is {level.value}: not promoted"}[outcome]
        await self.journal.record("decision", text, trading_date=iso, cycle_id=cid, outcome=outcome, payload=info)
        if outcome == "awaiting_approval":
            self._set_phase(AgentPhase.AWAITING_APPROVAL)
        return outcome, version

    async def write_inputs(self, inputs: CycleInputs, cycle_dir: Path) -> Path:
        path = cycle_dir / "inputs.pkl"

        def dump() -> None:
            cycle_dir.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                pickle.dump({"features": inputs.features, "labels": inputs.labels, "returns": inputs.returns}, fh, protocol=5)

        await asyncio.to_thread(dump)
        return path

    def make_job(self, experiment_id: str, params: dict[str, Any], inputs_path: Path, cycle_dir: Path) -> ExperimentJob:
        base = {
            "n_splits": self.config.wf_splits,
            "test_window": self.config.wf_test_window,
            "min_train": self.config.wf_min_train,
            "label_horizon": self.config.label_horizon,
            "cost_bps": self.config.cost_bps,
        }
        return ExperimentJob(experiment_id, base | params, str(cycle_dir / experiment_id), self.config.experiment_time_limit_s, str(inputs_path))

    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"
