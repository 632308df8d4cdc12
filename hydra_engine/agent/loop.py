"""AgentLoop: observe -> diagnose -> hypothesize -> experiment -> evaluate -> promote / roll back.

``run_cycle(trading_date, bars)`` is called once per trading day by the runner. It never raises
for bad data or a failed experiment: everything goes to the journal and the champion keeps
trading. Observation always runs; pause stops experiments; lockdown observes and diagnoses only.
Experiments run in subprocesses through the ``ExperimentExecutor`` seam; with
``experiment_wait_s`` set, the cycle returns after that long and any experiments still running
finish (and are evaluated and journalled) in the background, so they never hold up the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import pickle
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import structlog

from hydra_engine.agent.diagnose import DataQualityReport, Diagnosis, DiagnosisKind, check_data_quality, diagnose
from hydra_engine.agent.drift import CALENDAR_PREFIXES, DriftFinding, DriftMonitor, PerformanceMonitor, RealizedOutcome
from hydra_engine.agent.experiments import ExperimentExecutor, ExperimentJob, ExperimentResult
from hydra_engine.agent.hypotheses import Hypothesis, Playbook, PlaybookConfig
from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.agent.promotion import CandidateEvaluation, GateConfig, evaluate_result
from hydra_engine.agent.rollback import RollbackConfig, RollbackMonitor
from hydra_engine.agent.state import AgentState, AgentStateStore, AutonomyLevel
from hydra_engine.agent.thresholds import FalseAlarmBudget, thresholds_for_budget
from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.features import FeatureError, build_features, make_forward_returns, make_labels
from hydra_engine.model.registry import ModelRegistry, RegistryError
from hydra_engine.model.walk_forward import positions_from_proba

log = structlog.get_logger(__name__)

__all__ = ["AgentConfig", "AgentCycleResult", "AgentLoop", "AgentPhase", "AutonomyLevel"]


class AgentPhase(StrEnum):
    IDLE = "IDLE"
    OBSERVING = "OBSERVING"
    DIAGNOSING = "DIAGNOSING"
    HYPOTHESIZING = "HYPOTHESIZING"
    EXPERIMENTING = "EXPERIMENTING"
    EVALUATING = "EVALUATING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    PAUSED = "PAUSED"


@dataclass(slots=True)
class AgentConfig:
    """Agent settings. Budgets are false alarms per 1000 trading days."""

    alarms_per_1000_days_per_stream: float = 0.5
    reference_days: int = 500
    """Most recent training rows of the champion used as the drift reference."""
    findings_lookback_days: int = 20
    """Findings this recent (calendar days) count as evidence for a diagnosis."""
    max_catchup_days: int = 260
    experiment_time_limit_s: float = 300.0
    experiment_wait_s: float | None = None
    """None: run_cycle waits for its experiments. A number: return after that long."""
    wf_splits: int = 5
    wf_test_window: int = 50
    wf_min_train: int = 120
    cost_bps: float = 1.0
    label_horizon: int = 1
    overfit_gap_threshold: float = 0.05
    default_spec: dict[str, Any] = field(default_factory=lambda: {"family": "logistic"})
    """Spec of the first champion when the registry has none (bootstrap)."""
    gate: GateConfig = field(default_factory=GateConfig)
    playbook: PlaybookConfig = field(default_factory=PlaybookConfig)
    rollback: RollbackConfig = field(default_factory=RollbackConfig)
    initial_autonomy: AutonomyLevel = AutonomyLevel.SUPERVISED


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


@dataclass(slots=True)
class _Inputs:
    features: pd.DataFrame
    labels: pd.Series
    returns: pd.Series


def _prepare(bars: pd.DataFrame, horizon: int) -> _Inputs:
    return _Inputs(build_features(bars), make_labels(bars, horizon), make_forward_returns(bars, horizon))


class AgentLoop:
    """The self-healing loop. Create, ``await start()``, then ``await run_cycle(...)`` daily."""

    def __init__(
        self,
        conn: Any,
        registry: ModelRegistry,
        executor: ExperimentExecutor,
        work_dir: str | Path,
        config: AgentConfig | None = None,
        on_phase: Callable[[AgentPhase], Any] | None = None,
        write_gate: Any = None,
    ) -> None:
        """``write_gate``: the store's ``Store.tx`` when ``conn`` is shared with other writers."""
        self.config = config or AgentConfig()
        self.registry = registry
        self.executor = executor
        self.journal = ExperimentJournal(conn, write_gate)
        self._states = AgentStateStore(conn, write_gate)
        self.work_dir = Path(work_dir)
        self._on_phase = on_phase
        self._phase = AgentPhase.IDLE
        self._cycle_lock = asyncio.Lock()
        self._state_lock = asyncio.Lock()
        self.state = AgentState(autonomy=self.config.initial_autonomy)
        self.drift: DriftMonitor | None = None
        self.performance: PerformanceMonitor | None = None
        self.playbook = Playbook(self.config.playbook)
        self.rollback_monitor = RollbackMonitor(self.config.rollback)
        self._background: asyncio.Task[list[ExperimentOutcome]] | None = None
        self._models: dict[str, BaselineModel] = {}
        self._started = False

    # ----------------------------------------------------------------- state and phase
    @property
    def phase(self) -> AgentPhase:
        return self._phase

    @property
    def autonomy(self) -> AutonomyLevel:
        return self.state.autonomy

    @property
    def paused(self) -> bool:
        return self.state.paused

    @property
    def pending_approval(self) -> dict[str, Any] | None:
        return self.state.pending

    def _set_phase(self, phase: AgentPhase) -> None:
        if phase is self._phase:
            return
        self._phase = phase
        log.info("agent.phase", phase=phase.value)
        if self._on_phase is not None:
            try:
                self._on_phase(phase)
            except Exception:  # noqa: BLE001 - a broken subscriber must not break the agent
                log.exception("agent.on_phase_failed", phase=phase.value)

    def _rest_phase(self) -> AgentPhase:
        if self.state.pending:
            return AgentPhase.AWAITING_APPROVAL
        return AgentPhase.PAUSED if self.state.paused else AgentPhase.IDLE

    async def start(self) -> None:
        """Load persisted state; experiments left RUNNING by a crash become ABANDONED."""
        loaded = await self._states.load()
        if loaded is not None:
            self.state = loaded
        self.drift = DriftMonitor.from_dict(self.state.drift) if self.state.drift else None
        self.performance = PerformanceMonitor.from_dict(self.state.performance) if self.state.performance else None
        self.playbook = Playbook(self.config.playbook, self.state.playbook)
        self.rollback_monitor = RollbackMonitor(self.config.rollback, self.state.rollback)
        n = await self.journal.mark_interrupted()
        self._started = True
        self._set_phase(self._rest_phase())
        log.info("agent.started", autonomy=self.state.autonomy.value, paused=self.state.paused, abandoned=n,
                 champion=self.state.champion_version, restored=loaded is not None)

    async def _save(self) -> None:
        s = self.state
        s.drift = self.drift.to_dict() if self.drift else None
        s.performance = self.performance.to_dict() if self.performance else None
        s.playbook = self.playbook.to_dict()
        s.rollback = self.rollback_monitor.to_dict()
        await self._states.save(s)

    async def _model(self, version: str) -> BaselineModel:
        if version not in self._models:
            self._models[version] = await self.registry.load(version)
        return self._models[version]

    # ----------------------------------------------------------------- operator controls
    async def set_autonomy(self, level: AutonomyLevel | str) -> None:
        level = AutonomyLevel.parse(level)
        async with self._state_lock:
            old, self.state.autonomy = self.state.autonomy, level
            await self._save()
        await self.journal.record("control", f"autonomy {old.value} -> {level.value}", outcome="autonomy", payload={"from": old.value, "to": level.value})

    async def pause(self) -> None:
        """Stop experiments (observation continues). Persisted."""
        async with self._state_lock:
            self.state.paused = True
            await self._save()
        await self.journal.record("control", "agent paused: experiments stop, observation continues", outcome="paused")
        if self._phase in (AgentPhase.IDLE,):
            self._set_phase(AgentPhase.PAUSED)

    async def resume(self) -> None:
        async with self._state_lock:
            self.state.paused = False
            await self._save()
        await self.journal.record("control", "agent resumed", outcome="resumed")
        if self._phase is AgentPhase.PAUSED:
            self._set_phase(self._rest_phase())

    async def approve(self) -> str:
        """Promote the candidate awaiting approval; returns its version."""
        async with self._state_lock:
            pending = self.state.pending
            if not pending:
                raise RegistryError("approve: no candidate is awaiting approval")
            version = pending["version"]
            previous = await self.registry.champion_version()
            await self.registry.promote(version, reason=f"approved by operator ({pending['hypothesis_key']})")
            self._after_promotion(version, previous, pending)
            self.state.pending = None
            await self._save()
        await self.journal.set_experiment_outcome(pending["experiment_id"], "promoted", version)
        await self.journal.record("decision", f"operator approved {version}; it trades from the next signal", outcome="approved",
                                  trading_date=pending.get("trading_date"), payload={"version": version, "previous": previous, **pending})
        self._set_phase(self._rest_phase())
        return version

    async def reject(self, reason: str = "rejected by operator") -> str:
        """Reject the candidate awaiting approval; returns its version."""
        async with self._state_lock:
            pending = self.state.pending
            if not pending:
                raise RegistryError("reject: no candidate is awaiting approval")
            version = pending["version"]
            await self.registry.reject(version, reason)
            self.playbook.record(pending["hypothesis_key"], "rejected", self._today(pending.get("trading_date")))
            self.state.pending = None
            await self._save()
        await self.journal.set_experiment_outcome(pending["experiment_id"], "rejected_by_operator", version)
        await self.journal.record("decision", f"operator rejected {version}: {reason}", outcome="rejected",
                                  trading_date=pending.get("trading_date"), payload={"version": version, "reason": reason, **pending})
        self._set_phase(self._rest_phase())
        return version

    async def rollback(self, reason: str, trading_date: dt.date | None = None) -> str:
        """Manual rollback to the previous champion; returns the restored version."""
        today = trading_date or dt.date.today()
        async with self._state_lock:
            current = await self.registry.champion_version()
            restored = await self.registry.rollback(reason)
            self.rollback_monitor.note_rollback(today)
            await self._save()
        await self.journal.record("rollback", f"manual rollback {current} -> {restored}: {reason}", outcome="manual",
                                  trading_date=today, payload={"rolled_back": current, "restored": restored, "reason": reason})
        return restored

    @staticmethod
    def _today(value: str | None) -> dt.date:
        return dt.date.fromisoformat(value) if value else dt.date.today()

    def _after_promotion(self, version: str, previous: str | None, info: dict[str, Any]) -> None:
        if previous:
            self.rollback_monitor.start_watch(version, previous)
        self.state.trials_since_promotion = 0
        self.state.trial_sharpes = []
        self.state.last_promotion = info.get("trading_date")
        self.playbook.record(info["hypothesis_key"], "accepted", self._today(info.get("trading_date")))

    # ----------------------------------------------------------------- the cycle
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
        cutoff = (day - dt.timedelta(days=self.config.findings_lookback_days)).isoformat()
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

    async def _observe(self, day: dt.date, inputs: _Inputs, feats: pd.DataFrame, version: str, model: BaselineModel) -> tuple[list[DriftFinding], int, int, Any]:
        """Feed new feature rows and realized outcomes to the detectors (caller holds the state lock)."""
        if self.state.champion_version != version or self.drift is None or self.performance is None:
            rec = await self.registry.get(version)
            await asyncio.to_thread(self.reset_monitors, inputs, model, version, rec.metrics)
            if self.rollback_monitor.watching and self.rollback_monitor.new_version != version:
                self.rollback_monitor.stop_watch()
        assert self.drift is not None and self.performance is not None
        rows = feats if self.state.last_observed is None else feats[feats.index > pd.Timestamp(self.state.last_observed)]
        rows = rows.iloc[-self.config.max_catchup_days :]
        drift = self.drift

        def feed() -> list[DriftFinding]:
            out: list[DriftFinding] = []
            for ts, row in zip(rows.index, rows.to_dict("records")):
                out.extend(drift.update(row, pd.Timestamp(ts).date().isoformat()))
            return out

        findings = await asyncio.to_thread(feed)
        if len(rows):
            self.state.last_observed = pd.Timestamp(rows.index[-1]).date().isoformat()
        outcomes = await asyncio.to_thread(self.realized_outcomes, inputs, model, self.state.last_outcome, day)
        for ts, o in outcomes.iterrows():
            d = pd.Timestamp(ts).date().isoformat()
            findings.extend(self.performance.update(RealizedOutcome(d, float(o["p_up"]), int(o["label"]), float(o["signal_return"]))))
        verdict = None
        if len(outcomes):
            self.state.last_outcome = pd.Timestamp(outcomes.index[-1]).date().isoformat()
            mon = self.rollback_monitor
            if mon.watching and mon.new_version == version and mon.predecessor:
                try:
                    pred = await self._model(mon.predecessor)
                    p_old = await asyncio.to_thread(pred.predict_proba, inputs.features.loc[outcomes.index])
                    y = outcomes["label"].to_numpy()
                    pc = np.clip(p_old, 1e-6, 1 - 1e-6)
                    old_ll = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
                    for ts, new_l, old_l in zip(outcomes.index, outcomes["log_loss"], old_ll):
                        verdict = mon.update(pd.Timestamp(ts).date().isoformat(), float(new_l), float(old_l)) or verdict
                        if verdict:
                            break
                except (RegistryError, FeatureError) as exc:
                    log.warning("agent.shadow_failed", predecessor=mon.predecessor, error=str(exc))
        cutoff = (day - dt.timedelta(days=self.config.findings_lookback_days)).isoformat()
        self.state.recent_findings = [f for f in self.state.recent_findings if f["date"] >= cutoff] + [f.to_dict() for f in findings if f.date >= cutoff]
        self.state.last_cycle = day.isoformat()
        return findings, len(rows), len(outcomes), verdict

    async def _auto_rollback(self, day: dt.date, cid: str, verdict: Any) -> str:
        reason = f"{verdict.new_version} trailed {verdict.predecessor} by {verdict.trailing_excess_loss:.4f} nats/day for {verdict.bad_streak} days"
        async with self._state_lock:
            restored = await self.registry.rollback(reason)
            self.rollback_monitor.note_rollback(day)
            await self._save()
        await self.journal.record("rollback", f"automatic rollback to {restored}: {reason}", trading_date=day, cycle_id=cid,
                                  outcome="automatic", payload=verdict.to_dict() | {"restored": restored})
        return restored

    async def _bootstrap(self, day: dt.date, cid: str, inputs: _Inputs) -> AgentCycleResult:
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

    async def _experiment_batch(self, day: dt.date, cid: str, champion: str | None, spec: ModelSpec, hyps: list[Hypothesis],
                                inputs: _Inputs, diagnosis: Diagnosis | None) -> list[ExperimentOutcome]:
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

    # ----------------------------------------------------------------- helpers
    async def prepare_inputs(self, bars: pd.DataFrame) -> _Inputs:
        return await asyncio.to_thread(_prepare, bars, self.config.label_horizon)

    def reset_monitors(self, inputs: _Inputs, model: BaselineModel, version: str, record_metrics: dict[str, Any]) -> None:
        """New champion: detectors re-reference on its training rows and start clean."""
        feats = inputs.features
        train = feats.loc[(feats.index >= pd.Timestamp(model.train_start)) & (feats.index <= pd.Timestamp(model.train_end))] if model.train_start else feats
        cols = [c for c in model.spec.features if not c.startswith(CALENDAR_PREFIXES)]
        ref = train[cols].iloc[-self.config.reference_days :]
        n_streams = len(cols) + len(PerformanceMonitor.METRICS)
        budget = FalseAlarmBudget.per_feature(self.config.alarms_per_1000_days_per_stream, n_streams)
        thresholds = thresholds_for_budget(budget, n_reference=len(ref))
        self.drift = DriftMonitor.from_reference({c: ref[c].to_numpy() for c in ref.columns}, thresholds)
        self.performance = PerformanceMonitor(budget.per_stream)
        daily = record_metrics.get("agent_oos_daily") or {}
        if len(daily.get("log_loss", [])) >= 20:
            self.performance.set_reference(daily["log_loss"], daily["hit"], daily["return"])
        self.state.champion_version = version
        self.state.last_observed = model.train_end
        self.state.last_outcome = model.train_end
        self.state.recent_findings = []

    def realized_outcomes(self, inputs: _Inputs, model: BaselineModel, after: str | None, until: dt.date) -> pd.DataFrame:
        """The model's predictions on labelled days after ``after`` with label, return and loss."""
        labels, rets, feats = inputs.labels, inputs.returns, inputs.features
        idx = feats.index.intersection(labels.index).intersection(rets.index)
        idx = idx[idx <= pd.Timestamp(until)]
        if after is not None:
            idx = idx[idx > pd.Timestamp(after)]
        idx = idx[-self.config.max_catchup_days :]
        if len(idx) == 0:
            return pd.DataFrame(columns=["p_up", "label", "ret", "signal_return", "log_loss"])
        p = model.predict_proba(feats.loc[idx])
        y = labels.loc[idx].to_numpy()
        r = rets.loc[idx].to_numpy()
        pos = positions_from_proba(p)
        pc = np.clip(p, 1e-6, 1 - 1e-6)
        ll = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
        return pd.DataFrame({"p_up": p, "label": y, "ret": r, "signal_return": pos * r, "log_loss": ll}, index=idx)

    async def write_inputs(self, inputs: _Inputs, cycle_dir: Path) -> Path:
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
