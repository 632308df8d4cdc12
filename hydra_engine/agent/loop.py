"""AgentLoop: observe -> diagnose -> hypothesize -> experiment -> evaluate -> promote / roll back.

``run_cycle(trading_date, bars)`` is called once per trading day by the runner. It never raises
for bad data or a failed experiment: everything goes to the journal and the champion keeps
trading. Observation always runs; pause stops experiments; lockdown observes and diagnoses only.
Experiments run in subprocesses through the ``ExperimentExecutor`` seam; with
``experiment_wait_s`` set, the cycle returns after that long and any experiments still running
finish (and are evaluated and journalled) in the background, so they never hold up the signal.

The steps live in mixins, one concern per module: ``core`` (state, phase, settings), ``observe``
(detectors), ``decisions`` (experiments, gate, promotion) and ``controls`` (operator, rollback).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd
import structlog

from hydra_engine.agent.controls import ControlsMixin
from hydra_engine.agent.core import AgentConfig, AgentPhase
from hydra_engine.agent.decisions import DecisionMixin, ExperimentOutcome
from hydra_engine.agent.diagnose import DataQualityReport, Diagnosis, DiagnosisKind, check_data_quality, diagnose
from hydra_engine.agent.drift import DriftFinding
from hydra_engine.agent.hypotheses import Hypothesis
from hydra_engine.agent.observe import CycleInputs, ObservationMixin
from hydra_engine.agent.state import AutonomyLevel
from hydra_engine.model.baseline import ModelSpec
from hydra_engine.model.features import FeatureError

log = structlog.get_logger(__name__)

__all__ = ["AgentConfig", "AgentCycleResult", "AgentLoop", "AgentPhase", "AutonomyLevel"]


@dataclass(frozen=True, slots=True)
class AgentCycleResult:
    """What one cycle saw and did. Versions are registry versions."""

    trading_date: str
    cycle_id: str
    phase: AgentPhase
    drift_findings: tuple[DriftFinding, ...] = ()
    diagnosis: Diagnosis | None = None
    hypotheses: tuple[Hypothesis, ...] = ()
    experiments: tuple[ExperimentOutcome, ...] = ()
    experiments_running: tuple[str, ...] = ()
    promoted: str | None = None
    awaiting_approval: str | None = None
    rolled_back: str | None = None
    """Version restored by an automatic rollback in this cycle."""
    champion_version: str | None = None
    data_quality: DataQualityReport | None = None
    notes: tuple[str, ...] = ()
    """Why steps were skipped (paused, lockdown, pending approval, cooldown, ...)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "trading_date": self.trading_date,
            "cycle_id": self.cycle_id,
            "phase": self.phase.value,
            "drift_findings": [f.to_dict() for f in self.drift_findings],
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
            "hypotheses": [h.to_dict() for h in self.hypotheses],
            "experiments": [e.to_dict() for e in self.experiments],
            "experiments_running": list(self.experiments_running),
            "promoted": self.promoted,
            "awaiting_approval": self.awaiting_approval,
            "rolled_back": self.rolled_back,
            "champion_version": self.champion_version,
            "data_quality": self.data_quality.to_dict() if self.data_quality else None,
            "notes": list(self.notes),
        }


class AgentLoop(ObservationMixin, DecisionMixin, ControlsMixin):
    """The self-healing loop. Create, ``await start()``, then ``await run_cycle(...)`` daily."""

    async def run_cycle(self, trading_date: dt.date, bars: pd.DataFrame) -> AgentCycleResult:
        """One daily cycle on the completed bars up to ``trading_date`` (oldest first)."""
        if not self._started:
            await self.start()
        async with self._cycle_lock:
            try:
                return await self._cycle(trading_date, bars)
            except Exception as exc:  # noqa: BLE001 - healing must never take the trading cycle down
                log.exception("agent.cycle_failed", trading_date=str(trading_date))
                with contextlib.suppress(Exception):
                    await self.journal.record("error", f"agent cycle failed: {type(exc).__name__}: {exc}", trading_date=trading_date,
                                              outcome="cycle_failed", payload={"error": repr(exc)})
                return AgentCycleResult(trading_date.isoformat(), "failed", self._rest_phase(),
                                        notes=(f"agent cycle failed ({type(exc).__name__}: {exc}); the champion keeps trading",))
            finally:
                self._set_phase(self._rest_phase())

    async def _cycle(self, day: dt.date, bars: pd.DataFrame) -> AgentCycleResult:
        iso, cid = day.isoformat(), f"{day.isoformat()}-{uuid.uuid4().hex[:6]}"
        self._set_phase(AgentPhase.OBSERVING)
        try:
            inputs = await self.prepare_inputs(bars)
        except (FeatureError, ValueError, TypeError) as exc:
            dq = DataQualityReport(iso, issues=(f"cannot build features: {exc}",))
            await self.journal.record("data_quality", dq.issues[0], trading_date=iso, cycle_id=cid, outcome="unusable", payload=dq.to_dict())
            return AgentCycleResult(iso, cid, self._rest_phase(), data_quality=dq, champion_version=await self.registry.champion_version(),
                                    notes=("no usable features today; the champion keeps trading",))
        entry = await self.registry.champion_entry()
        if entry is None:
            return await self._bootstrap(day, cid, inputs)
        version, model = entry
        feats = inputs.features[inputs.features.index <= pd.Timestamp(day)]
        dq = check_data_quality(feats, day, model.spec.features)
        if not dq.ok:
            await self.journal.record("data_quality", "; ".join(dq.issues), trading_date=iso, cycle_id=cid, outcome="issues", payload=dq.to_dict())
        async with self._state_lock:
            findings, n_rows, n_out, verdict = await self._observe(day, inputs, feats, version, model)
            await self._save()
        perf = self.performance.recent_summary() if self.performance else {}
        await self.journal.record(
            "observation", f"{n_rows} feature rows and {n_out} realized outcomes observed; {len(findings)} alarms",
            trading_date=iso, cycle_id=cid, outcome="alarm" if findings else "quiet",
            payload={"champion": version, "findings": findings[:50], "performance": perf, "rows": n_rows, "outcomes": n_out},
        )
        base = {"trading_date": iso, "cycle_id": cid, "drift_findings": tuple(findings), "data_quality": dq, "champion_version": version}
        if verdict is not None:
            if self.state.autonomy is AutonomyLevel.LOCKDOWN:
                await self.journal.record("rollback", f"rollback of {verdict.new_version} recommended (lockdown: not done)", trading_date=iso,
                                          cycle_id=cid, outcome="recommended", payload=verdict.to_dict())
            else:
                restored = await self._auto_rollback(day, cid, verdict)
                return AgentCycleResult(phase=self._rest_phase(), rolled_back=restored, notes=("automatic rollback; cooldown started",), **base | {"champion_version": restored})
        if not findings and dq.ok:
            return AgentCycleResult(phase=self._rest_phase(), **base)
        self._set_phase(AgentPhase.DIAGNOSING)
        cutoff = self._findings_cutoff(day)
        recent = [DriftFinding(**f) for f in self.state.recent_findings if f["date"] >= cutoff]
        rec = await self.registry.get(version)
        # Overfit evidence is a property of the champion: its walk-forward (out-of-sample) log loss
        # at registration against its in-sample log loss. Realized losses would confuse it with drift.
        in_sample = rec.metrics.get("in_sample_log_loss")
        oos = ((rec.metrics.get("walk_forward") or {}).get("overall") or {}).get("log_loss")
        gap = oos - in_sample if in_sample is not None and oos is not None else None
        diagnosis = diagnose(recent or findings, dq, overfit_gap=gap, overfit_gap_threshold=self.config.overfit_gap_threshold, performance=perf)
        await self.journal.record("diagnosis", diagnosis.summary, trading_date=iso, cycle_id=cid, outcome=diagnosis.kind.value, payload=diagnosis.to_dict())
        base["diagnosis"] = diagnosis
        if diagnosis.kind in (DiagnosisKind.NONE, DiagnosisKind.DATA_QUALITY):
            note = "data quality problem: the model is not changed on bad data" if diagnosis.kind is DiagnosisKind.DATA_QUALITY else "nothing to repair"
            return AgentCycleResult(phase=self._rest_phase(), notes=(note,), **base)
        blocked = self._experiments_blocked(day)
        if blocked:
            await self.journal.record("hypothesis", f"no experiments: {blocked}", trading_date=iso, cycle_id=cid, outcome="blocked", payload={"reason": blocked})
            return AgentCycleResult(phase=self._rest_phase(), notes=(blocked,), **base)
        self._set_phase(AgentPhase.HYPOTHESIZING)
        chosen, skipped = self.playbook.propose(diagnosis, model.spec, day)
        for h, why in skipped:
            await self.journal.record("hypothesis", f"skipped {h.kind}: {why}", trading_date=iso, cycle_id=cid, outcome="skipped", payload=h.to_dict() | {"reason": why})
        for h in chosen:
            await self.journal.record("hypothesis", f"{h.kind}: {h.rationale}", trading_date=iso, cycle_id=cid, outcome="chosen", payload=h.to_dict())
        base["hypotheses"] = tuple(chosen)
        if not chosen:
            return AgentCycleResult(phase=self._rest_phase(), notes=("no hypothesis left (budget, cooldowns or playbook exhausted)",), **base)
        async with self._state_lock:
            for h in chosen:
                self.playbook.record(h.key, "pending", day)
            await self._save()
        self._set_phase(AgentPhase.EXPERIMENTING)
        task = asyncio.create_task(self._experiment_batch(day, cid, version, model.spec, chosen, inputs, diagnosis))
        wait = self.config.experiment_wait_s
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:
            self._background = task
            task.add_done_callback(self._background_done)
            return AgentCycleResult(phase=AgentPhase.EXPERIMENTING, experiments_running=tuple(h.key for h in chosen),
                                    notes=(f"experiments continue in the background after {wait:g} s",), **base)
        outcomes = task.result()
        promoted = next((o.candidate_version for o in outcomes if o.outcome == "promoted"), None)
        awaiting = next((o.candidate_version for o in outcomes if o.outcome == "awaiting_approval"), None)
        return AgentCycleResult(
            phase=self._rest_phase(), experiments=tuple(outcomes), promoted=promoted, awaiting_approval=awaiting,
            **base | {"champion_version": await self.registry.champion_version()},
        )

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            log.warning("agent.background_cancelled")
        elif task.exception() is not None:
            log.error("agent.background_failed", error=repr(task.exception()))
        if self._phase is AgentPhase.EXPERIMENTING or self._phase is AgentPhase.EVALUATING:
            self._set_phase(self._rest_phase())

    async def wait_background(self, timeout: float | None = None) -> list[ExperimentOutcome] | None:
        """Wait for experiments left running by a cycle (tests, shutdown)."""
        task = self._background
        if task is None:
            return None
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return task.result() if done else None

    def _experiments_blocked(self, day: dt.date) -> str | None:
        if self.state.autonomy is AutonomyLevel.LOCKDOWN:
            return "lockdown: observe only"
        if self.state.paused:
            return "paused: experiments stopped (observation continues)"
        if self.state.pending:
            return f"candidate {self.state.pending['version']} is awaiting approval"
        if self._background is not None and not self._background.done():
            return "experiments from an earlier cycle are still running"
        if self.rollback_monitor.in_cooldown(day):
            return f"rollback cooldown until {self.rollback_monitor.cooldown_until}"
        return None

    async def _bootstrap(self, day: dt.date, cid: str, inputs: CycleInputs) -> AgentCycleResult:
        """No champion yet: train the default spec, evaluate it, and promote (or await approval)."""
        iso = day.isoformat()
        blocked = "lockdown: observe only" if self.state.autonomy is AutonomyLevel.LOCKDOWN else ("paused" if self.state.paused else None)
        if self.state.pending:
            blocked = f"candidate {self.state.pending['version']} is awaiting approval"
        if blocked:
            return AgentCycleResult(iso, cid, self._rest_phase(), notes=(f"no champion; bootstrap not run ({blocked})",))
        hyp = Hypothesis("bootstrap", {}, "none", "first champion from the default spec")
        self._set_phase(AgentPhase.EXPERIMENTING)
        outcomes = await self._experiment_batch(day, cid, None, ModelSpec.from_dict(self.config.default_spec), [hyp], inputs, None)
        o = outcomes[0]
        return AgentCycleResult(iso, cid, self._rest_phase(), hypotheses=(hyp,), experiments=tuple(outcomes),
                                promoted=o.candidate_version if o.outcome == "promoted" else None,
                                awaiting_approval=o.candidate_version if o.outcome == "awaiting_approval" else None,
                                champion_version=await self.registry.champion_version())

    def status(self) -> dict[str, Any]:
        """Snapshot for the TUI's agent pane: phase, autonomy, detectors against thresholds, pending."""
        readings = (self.drift.readings() if self.drift else []) + (self.performance.readings() if self.performance else [])
        return {
            "phase": self._phase.value,
            "autonomy": self.state.autonomy.value,
            "paused": self.state.paused,
            "champion": self.state.champion_version,
            "pending": self.state.pending,
            "trials_since_promotion": self.state.trials_since_promotion,
            "rollback_watch": self.rollback_monitor.to_dict(),
            "detectors": [{"stream": r.stream, "detector": r.detector, "statistic": r.statistic, "threshold": r.threshold} for r in readings],
            "last_cycle": self.state.last_cycle,
        }
