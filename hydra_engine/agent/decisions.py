"""Experiments and the decision on them: run a batch, gate each result, register and promote the best.

Whether the winner is promoted, left awaiting approval or held depends on the autonomy level;
every experiment's end is journalled and fed back to the playbook.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from hydra_engine.agent.controls import journal_lift
from hydra_engine.agent.core import AgentConfig, AgentMemory, AgentPhase, PhaseSink
from hydra_engine.agent.diagnose import Diagnosis
from hydra_engine.agent.experiments import (
    ExperimentExecutor,
    ExperimentJob,
    ExperimentResult,
)
from hydra_engine.agent.hypotheses import Hypothesis
from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.agent.observe import CycleInputs
from hydra_engine.agent.promotion import CandidateEvaluation, episode_alpha, evaluate_result
from hydra_engine.agent.state import AutonomyLevel
from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.registry import ModelRegistry, RegistryError
from hydra_engine.tasks import log_task_failure

log = structlog.get_logger(__name__)

__all__ = ["DecisionMaker", "ExperimentOutcome"]


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


class DecisionMaker:
    """Runs experiment batches, gates each result and promotes (or holds) the best candidate.

    Owns the batch left running in the background when a cycle stops waiting for it; ``stop()``
    cancels that batch (its experiments are journalled as abandoned on the next start).
    """

    def __init__(self, config: AgentConfig, registry: ModelRegistry, executor: ExperimentExecutor, journal: ExperimentJournal,
                 memory: AgentMemory, phases: PhaseSink, work_dir: Path) -> None:
        self._config = config
        self._registry = registry
        self._executor = executor
        self._journal = journal
        self._memory = memory
        self._phases = phases
        self._work_dir = work_dir
        self._background: asyncio.Task[list[ExperimentOutcome]] | None = None

    @property
    def busy(self) -> bool:
        """True while a batch from an earlier cycle is still running."""
        return self._background is not None and not self._background.done()

    async def run_in_background(self, wait: float | None, day: dt.date, cid: str, champion: str | None, spec: ModelSpec,
                                hyps: list[Hypothesis], inputs: CycleInputs, diagnosis: Diagnosis | None,
                                evidence_since: str | None = None, look: int | None = None) -> list[ExperimentOutcome] | None:
        """Run a batch; its outcomes, or None when it is still running after ``wait`` seconds (it goes on)."""
        task = asyncio.create_task(self.run_batch(day, cid, champion, spec, hyps, inputs, diagnosis, evidence_since, look))
        done, _ = await asyncio.wait({task}, timeout=wait)
        if done:
            return task.result()
        self._background = task
        task.add_done_callback(self._background_done)
        return None

    def _background_done(self, task: asyncio.Task[list[ExperimentOutcome]]) -> None:
        if task.cancelled():
            log.warning("agent.background_cancelled")
        log_task_failure(task)
        if self._phases.phase is AgentPhase.EXPERIMENTING or self._phases.phase is AgentPhase.EVALUATING:
            self._phases.set_phase(self._memory.rest_phase())

    async def wait_background(self, timeout: float | None = None) -> list[ExperimentOutcome] | None:
        """Wait for the batch left running by a cycle (tests, shutdown)."""
        task = self._background
        if task is None:
            return None
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return task.result() if done else None

    async def stop(self) -> None:
        """Cancel a batch still running in the background and wait for it to unwind."""
        task = self._background
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run_batch(self, day: dt.date, cid: str, champion: str | None, spec: ModelSpec, hyps: list[Hypothesis],
                        inputs: CycleInputs, diagnosis: Diagnosis | None, evidence_since: str | None = None,
                        look: int | None = None) -> list[ExperimentOutcome]:
        """Run ``hyps`` against ``champion`` and decide. ``evidence_since``: the episode's first alarm;
        the gate then compares the two only on the walk-forward windows wholly after it. ``look``:
        which batch of the episode this is; the DM test's level is then ``episode_alpha``."""
        iso = day.isoformat()
        gate = self._config.gate
        if evidence_since and look is not None:
            gate = replace(gate, dm_alpha=episode_alpha(gate.dm_alpha, look, len(hyps)))
        cycle_dir = self._work_dir / cid
        inputs_path = await self.write_inputs(inputs, cycle_dir)
        jobs: list[tuple[Hypothesis, ExperimentJob]] = []
        champion_dir = str(self._registry.models_dir / (await self._registry.get(champion)).path) if champion else None
        for h in hyps:
            params: dict[str, Any] = {"candidate_spec": h.apply(spec.to_dict()), "champion_model_dir": champion_dir}
            if evidence_since and champion_dir:
                params["evidence_since"] = evidence_since
            job = self.make_job(self.new_id("exp"), params, inputs_path, cycle_dir)
            await self._journal.start_experiment(job.experiment_id, h.key, diagnosis=diagnosis.kind.value if diagnosis else "bootstrap",
                                                config_diff=h.config_diff, trading_date=iso, cycle_id=cid, log_path=str(job.log_path))
            jobs.append((h, job))
        async with self._memory.lock:
            self._memory.state.trials_since_promotion += len(jobs)
            await self._memory.save()
        runs = [asyncio.ensure_future(self._executor.run(job)) for _, job in jobs]
        try:
            results = await asyncio.gather(*runs)
        except asyncio.CancelledError:
            # gather gives up at the first cancelled run; wait until every worker is killed, so a
            # cancelled batch (shutdown) leaves no process behind
            for run in runs:
                run.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
            raise
        self._phases.set_phase(AgentPhase.EVALUATING)
        n_trials = self._memory.state.trials_since_promotion
        evaluated: list[tuple[Hypothesis, ExperimentResult, CandidateEvaluation | None]] = []
        for (h, job), res in zip(jobs, results, strict=True):
            ev = None
            if res.ok and champion is not None:
                ev = await asyncio.to_thread(evaluate_result, job.experiment_id, res.result or {}, n_trials, list(self._memory.state.trial_sharpes), gate)
                # the spread of trial Sharpes deflates the next candidate's: record each on the
                # deflated Sharpe's own basis (the whole walk-forward), never on the shorter
                # comparison since the alarm, whose sampling noise would inflate the spread
                trial = ev.gate.dsr.sharpe if ev.gate is not None and ev.gate.dsr is not None else ev.candidate_sharpe_daily
                if trial is not None:
                    self._memory.state.trial_sharpes = [*self._memory.state.trial_sharpes, trial][-500:]
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
            metrics = {"evaluation": ev.to_dict() if ev else None, "dm_alpha": gate.dm_alpha, "evidence_since": evidence_since,
                       "candidate": (res.result or {}).get("candidate", {}).get("summary", {}).get("overall"),
                       "champion": ((res.result or {}).get("champion") or {}).get("summary", {}).get("overall")}
            await self._journal.finish_experiment(res.experiment_id, status=status, outcome=outcome, metrics=metrics, error=res.error,
                                                 duration_s=res.duration_s, candidate_version=version)
            summary = f"{h.kind} {status.lower()} in {res.duration_s:.1f} s: {outcome}"
            if ev is not None and ev.gate is not None and not ev.gate.passed:
                summary += f" ({'; '.join(ev.gate.reasons)})"
            if res.error:
                summary += f": {res.error.strip().splitlines()[-1][:200]}"
            await self._journal.record("experiment", summary, trading_date=iso, cycle_id=cid, outcome=outcome,
                                      payload={"experiment_id": res.experiment_id, "hypothesis": h.to_dict(), "status": status, "duration_s": res.duration_s,
                                               "metrics": metrics, "error": res.error, "log_path": res.log_path, "candidate_version": version})
            if outcome not in ("promoted", "awaiting_approval"):
                self._memory.playbook.record(h.key, {"failed_gate": "rejected"}.get(outcome, outcome), day)
            outcomes.append(ExperimentOutcome(res.experiment_id, h.key, status, outcome, res.duration_s, version,
                                              ev.gate.to_dict() if ev and ev.gate else None, res.error, res.log_path))
        async with self._memory.lock:
            await self._memory.save()
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
            version = await self._registry.register(model, metrics, parent=champion, mutation=h.key)
        except (KeyError, OSError, ValueError, RegistryError) as exc:
            await self._journal.record("error", f"cannot register candidate of {res.experiment_id}: {exc}", trading_date=iso, cycle_id=cid, outcome="register_failed")
            return "error", None
        # A batch left running in the background ends some cycles later: the decision belongs to the
        # latest cycle seen (when it takes effect), the batch's own date stays in the payload.
        decided = max(iso, (self._memory.state.last_cycle or iso)[:10])
        info = {"version": version, "experiment_id": res.experiment_id, "hypothesis_key": h.key, "trading_date": decided,
                "batch_date": iso, "previous": champion, "gate": ev.gate.to_dict() if ev and ev.gate else None}
        iso = decided
        lifted = None
        async with self._memory.lock:
            level = self._memory.state.autonomy
            if level is AutonomyLevel.AUTONOMOUS and not self._memory.state.paused:
                await self._registry.promote(version, reason=f"agent: {h.key}")
                lifted = self._memory.record_promotion(version, champion, info)
                outcome = "promoted"
            elif level is AutonomyLevel.SUPERVISED or (level is AutonomyLevel.AUTONOMOUS and self._memory.state.paused):
                self._memory.state.pending = info
                outcome = "awaiting_approval"
            else:
                outcome = "held"
            await self._memory.save()
        text = {"promoted": f"promoted {version} (was {champion}); it trades from the next signal",
                "awaiting_approval": f"{version} passed the gate and awaits operator approval",
                "held": f"{version} passed the gate but autonomy is {level.value}: not promoted"}[outcome]
        await self._journal.record("decision", text, trading_date=iso, cycle_id=cid, outcome=outcome, payload=info)
        await journal_lift(self._journal, lifted, version, iso)
        if outcome == "awaiting_approval":
            self._phases.set_phase(AgentPhase.AWAITING_APPROVAL)
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
            "n_splits": self._config.wf_splits,
            "test_window": self._config.wf_test_window,
            "min_train": self._config.wf_min_train,
            "label_horizon": self._config.label_horizon,
            "cost_bps": self._config.cost_bps,
        }
        return ExperimentJob(experiment_id, base | params, str(cycle_dir / experiment_id), self._config.experiment_time_limit_s, str(inputs_path))

    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"
