"""AgentLoop: observe -> diagnose -> hypothesize -> experiment -> evaluate -> promote / roll back.

``run_cycle(trading_date, bars)`` is called once per trading day by the runner. It never raises
for bad data or a failed experiment: everything goes to the journal and the champion keeps
trading. Observation always runs; pause stops experiments; lockdown observes and diagnoses only.
Experiments run in subprocesses through the ``ExperimentExecutor`` seam; with
``experiment_wait_s`` set, the cycle returns after that long and any experiments still running
finish (and are evaluated and journalled) in the background, so they never hold up the signal.

``AgentLoop`` holds its parts and runs the steps in order: ``AgentMemory`` (``core``: the persisted
state and its lock), ``Observer`` (``observe``: the detectors), ``DecisionMaker`` (``decisions``:
experiments, gate, promotion) and ``AgentControls`` (``controls``: operator commands, rollbacks).
Each part gets what it uses in its constructor; none reaches into another's private members.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import pandas as pd
import structlog

from hydra_engine.agent.controls import AgentControls, journal_lift
from hydra_engine.agent.core import AgentConfig, AgentMemory, AgentPhase, PhaseTracker
from hydra_engine.agent.decisions import DecisionMaker, ExperimentOutcome
from hydra_engine.agent.derisk import break_test, broken_diagnosis
from hydra_engine.agent.diagnose import (
    DataQualityReport,
    Diagnosis,
    DiagnosisKind,
    check_data_quality,
    diagnose,
)
from hydra_engine.agent.drift import DriftFinding, DriftMonitor, PerformanceMonitor
from hydra_engine.agent.experiments import ExperimentExecutor
from hydra_engine.agent.hypotheses import Hypothesis, Playbook, SinceAlarm
from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.agent.observe import CycleInputs, Observer
from hydra_engine.agent.rollback import RollbackMonitor
from hydra_engine.agent.state import AgentState, AgentStateStore, AutonomyLevel, state_key
from hydra_engine.model.baseline import ModelSpec
from hydra_engine.model.features import FeatureError
from hydra_engine.model.registry import ModelRegistry, WriteGateLike

log = structlog.get_logger(__name__)

__all__ = ["AgentConfig", "AgentCycleResult", "AgentLoop", "AgentPhase", "AutonomyLevel", "evidence_days_needed"]


def evidence_days_needed(config: AgentConfig) -> int:
    """Labelled days after the first alarm before an experiment runs: enough whole test windows
    to hold the gate's ``min_oos_days`` (windows are laid back from the newest day)."""
    tw = config.wf_test_window
    return -(-config.gate.min_oos_days // tw) * tw


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
    size_fraction: float = 1.0
    """Share of the market's size the agent allows today (below 1 while de-risked)."""

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
            "size_fraction": self.size_fraction,
        }


class AgentLoop:
    """The self-healing loop. Create, ``await start()``, then ``await run_cycle(...)`` daily; ``stop()``
    on shutdown."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        registry: ModelRegistry,
        executor: ExperimentExecutor,
        work_dir: str | Path,
        config: AgentConfig | None = None,
        on_phase: Callable[[AgentPhase], object] | None = None,
        write_gate: WriteGateLike | None = None,
        market: str | None = None,
    ) -> None:
        """``write_gate``: the store's ``Store.tx`` when ``conn`` is shared with other writers.
        ``market``: the market (or group of markets) this agent heals: its journal entries, state
        row, experiments folder and (through ``registry``, scoped by the caller) its champion;
        None: the store's single agent of before per-market champions."""
        self.config = config or AgentConfig()
        self.market = market
        self.registry = registry
        self.executor = executor
        self.work_dir = Path(work_dir)
        self.journal = ExperimentJournal(conn, write_gate, market=market)
        self._phases = PhaseTracker(on_phase, market=market)
        self._observer = Observer(self.config, registry)
        self._memory = AgentMemory(AgentStateStore(conn, write_gate, key=state_key(market)), self.config, parts=(self._observer,))
        self._decisions = DecisionMaker(self.config, registry, executor, self.journal, self._memory, self._phases, self.work_dir)
        self._controls = AgentControls(registry, self.journal, self._memory, self._phases)
        self._cycle_lock = asyncio.Lock()
        self._started = False

    # ----------------------------------------------------------------- state and phase
    @property
    def phase(self) -> AgentPhase:
        return self._phases.phase

    @property
    def state(self) -> AgentState:
        """The persisted record (read it; change it through the controls)."""
        return self._memory.state

    @property
    def autonomy(self) -> AutonomyLevel:
        return self._memory.state.autonomy

    @property
    def paused(self) -> bool:
        return self._memory.state.paused

    @property
    def pending_approval(self) -> dict[str, Any] | None:
        return self._memory.state.pending

    @property
    def size_fraction(self) -> float:
        """Share of the market's size allowed now: the de-risk cut while one is in force, else 1."""
        d = self._memory.state.derisk
        return float(d.get("size_fraction", 0.0)) if d else 1.0

    @property
    def derisk(self) -> dict[str, Any] | None:
        """The de-risk in force (fraction, since, reason, evidence), or None."""
        return self._memory.state.derisk

    @property
    def drift(self) -> DriftMonitor | None:
        return self._observer.drift

    @property
    def performance(self) -> PerformanceMonitor | None:
        return self._observer.performance

    @property
    def playbook(self) -> Playbook:
        return self._memory.playbook

    @property
    def rollback_monitor(self) -> RollbackMonitor:
        return self._memory.rollback_monitor

    async def start(self) -> None:
        """Load persisted state; experiments left RUNNING by a crash become ABANDONED."""
        restored = await self._memory.load()
        n = await self.journal.mark_interrupted()
        self._started = True
        self._phases.set_phase(self._memory.rest_phase())
        s = self._memory.state
        log.info("agent.started", market=self.market, autonomy=s.autonomy.value, paused=s.paused, abandoned=n,
                 champion=s.champion_version, restored=restored)

    async def stop(self) -> None:
        """Shutdown: experiments still running in the background are cancelled (journalled as
        abandoned on the next start). The executor is its owner's to shut down."""
        await self._decisions.stop()

    # ----------------------------------------------------------------- operator controls
    async def set_autonomy(self, level: AutonomyLevel | str) -> None:
        await self._controls.set_autonomy(level)

    async def pause(self) -> None:
        """Stop experiments (observation continues). Persisted."""
        await self._controls.pause()

    async def resume(self) -> None:
        await self._controls.resume()

    async def approve(self) -> str:
        """Promote the candidate awaiting approval; returns its version."""
        return await self._controls.approve()

    async def reject(self, reason: str = "rejected by operator") -> str:
        """Reject the candidate awaiting approval; returns its version."""
        return await self._controls.reject(reason)

    async def rollback(self, reason: str, trading_date: dt.date | None = None) -> str:
        """Manual rollback to the previous champion; returns the restored version."""
        return await self._controls.rollback(reason, trading_date)

    # ----------------------------------------------------------------- the cycle
    async def prepare_inputs(self, bars: pd.DataFrame) -> CycleInputs:
        """Features, labels and returns of ``bars`` (off the event loop)."""
        return await self._observer.prepare_inputs(bars)

    async def run_experiments(self, day: dt.date, cid: str, champion: str | None, spec: ModelSpec, hyps: list[Hypothesis],
                              inputs: CycleInputs, diagnosis: Diagnosis | None, evidence_since: str | None = None) -> list[ExperimentOutcome]:
        """Run one batch of experiments to the end and decide on it (benchmarks; cycles call it themselves)."""
        return await self._decisions.run_batch(day, cid, champion, spec, hyps, inputs, diagnosis, evidence_since)

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
                return AgentCycleResult(trading_date.isoformat(), "failed", self._memory.rest_phase(),
                                        notes=(f"agent cycle failed ({type(exc).__name__}: {exc}); the champion keeps trading",))
            finally:
                self._phases.set_phase(self._memory.rest_phase())

    async def _cycle(self, day: dt.date, bars: pd.DataFrame) -> AgentCycleResult:
        iso, cid = day.isoformat(), f"{day.isoformat()}-{uuid.uuid4().hex[:6]}"
        self._phases.set_phase(AgentPhase.OBSERVING)
        try:
            inputs = await self._observer.prepare_inputs(bars)
        except (FeatureError, ValueError, TypeError) as exc:
            dq = DataQualityReport(iso, issues=(f"cannot build features: {exc}",))
            await self.journal.record("data_quality", dq.issues[0], trading_date=iso, cycle_id=cid, outcome="unusable", payload=dq.to_dict())
            return AgentCycleResult(iso, cid, self._memory.rest_phase(), data_quality=dq, champion_version=await self.registry.champion_version(),
                                    notes=("no usable features today; the champion keeps trading",))
        entry = await self.registry.champion_entry()
        if entry is None:
            return await self._bootstrap(day, cid, inputs)
        version, model = entry
        feats = inputs.features[inputs.features.index <= pd.Timestamp(day)]
        dq = check_data_quality(feats, day, model.spec.features)
        if not dq.ok:
            await self.journal.record("data_quality", "; ".join(dq.issues), trading_date=iso, cycle_id=cid, outcome="issues", payload=dq.to_dict())
        async with self._memory.lock:
            stale = self._memory.state.champion_version not in (None, version)
            lifted = self._memory.end_episode() if stale else None
            seen = await self._observer.observe(self._memory.state, self._memory.rollback_monitor, day, inputs, feats, version, model)
            await self._memory.save()
        await journal_lift(self.journal, lifted, version, iso)
        findings, n_rows, n_out, verdict = list(seen.findings), seen.rows, seen.outcomes, seen.verdict
        perf = self._observer.performance_summary()
        await self.journal.record(
            "observation", f"{n_rows} feature rows and {n_out} realized outcomes observed; {len(findings)} alarms",
            trading_date=iso, cycle_id=cid, outcome="alarm" if findings else "quiet",
            payload={"champion": version, "findings": findings[:50], "performance": perf, "rows": n_rows, "outcomes": n_out},
        )
        base: dict[str, Any] = {"trading_date": iso, "cycle_id": cid, "drift_findings": tuple(findings), "data_quality": dq, "champion_version": version}
        if verdict is None:
            await self._check_break(day, cid, inputs, model, version, findings)
        base["size_fraction"] = self.size_fraction
        if verdict is not None:
            if self._memory.state.autonomy is AutonomyLevel.LOCKDOWN:
                await self.journal.record("rollback", f"rollback of {verdict.new_version} recommended (lockdown: not done)", trading_date=iso,
                                          cycle_id=cid, outcome="recommended", payload=verdict.to_dict())
            else:
                restored = await self._controls.rollback_automatically(day, cid, verdict)
                return AgentCycleResult(phase=self._memory.rest_phase(), rolled_back=restored, notes=("automatic rollback; cooldown started",),
                                        **base | {"champion_version": restored, "size_fraction": self.size_fraction})
        healing = self._healing()
        if not findings and dq.ok and not healing:
            return AgentCycleResult(phase=self._memory.rest_phase(), **base)
        # A de-risked market keeps healing on days without a new alarm; on those days only a chosen
        # hypothesis is journalled (with its diagnosis), not the daily "still waiting".
        quiet = not findings and dq.ok
        entries: list[tuple[str, str, str, dict[str, Any]]] = []
        self._phases.set_phase(AgentPhase.DIAGNOSING)
        recent = self._observer.recent_findings(self._memory.state, day)
        rec = await self.registry.get(version)
        # Overfit evidence is a property of the champion: its walk-forward (out-of-sample) log loss
        # at registration against its in-sample log loss. Realized losses would confuse it with drift.
        in_sample = rec.metrics.get("in_sample_log_loss")
        oos = ((rec.metrics.get("walk_forward") or {}).get("overall") or {}).get("log_loss")
        gap = oos - in_sample if in_sample is not None and oos is not None else None
        diagnosis = diagnose(recent or findings, dq, overfit_gap=gap, overfit_gap_threshold=self.config.overfit_gap_threshold, performance=perf)
        if diagnosis.kind is DiagnosisKind.NONE and healing:
            diagnosis = broken_diagnosis(self._memory.state.derisk or {}, perf)
        entries.append(("diagnosis", diagnosis.summary, diagnosis.kind.value, diagnosis.to_dict()))
        base["diagnosis"] = diagnosis

        async def flush() -> None:
            for kind, text, outcome, payload in entries:
                await self.journal.record(kind, text, trading_date=iso, cycle_id=cid, outcome=outcome, payload=payload)
            entries.clear()

        async def stop(note: str) -> AgentCycleResult:
            if not quiet:
                await flush()
            return AgentCycleResult(phase=self._memory.rest_phase(), notes=(note,), **base)

        if diagnosis.kind in (DiagnosisKind.NONE, DiagnosisKind.DATA_QUALITY):
            return await stop("data quality problem: the model is not changed on bad data" if diagnosis.kind is DiagnosisKind.DATA_QUALITY else "nothing to repair")
        blocked = self._experiments_blocked(day)
        if blocked:
            entries.append(("hypothesis", f"no experiments: {blocked}", "blocked", {"reason": blocked}))
            return await stop(blocked)
        since = await asyncio.to_thread(self._since_alarm, inputs, day)
        waiting = self._evidence_wait(since)
        if not waiting and since is not None and self.config.evidence_since_alarm and since.windows <= self._memory.state.episode_windows_tried:
            waiting = (f"the evidence since the first alarm on {since.start} ({since.windows} windows) was tested on an earlier day; "
                       f"the next batch waits for a new window")
        if waiting:
            entries.append(("hypothesis", f"no experiments yet: {waiting}", "waiting",
                            {"reason": waiting, "since": since.start if since else None, "rows": since.rows if since else 0}))
            return await stop(waiting)
        self._phases.set_phase(AgentPhase.HYPOTHESIZING)
        chosen, skipped = self._memory.playbook.propose(diagnosis, model.spec, day, since)
        if since is not None and self.config.evidence_since_alarm and len(chosen) > 1:
            # Every try of an episode is judged on the same days since the alarm: one candidate per
            # look (the playbook's first) keeps the DM level it is given whole, and the trial count low.
            why = "one candidate per look at the evidence since the alarm (its DM level is not split)"
            skipped = [*skipped, *((h, why) for h in chosen[1:])]
            chosen = chosen[:1]
        for h, why in skipped:
            entries.append(("hypothesis", f"skipped {h.kind}: {why}", "skipped", h.to_dict() | {"reason": why}))
        for h in chosen:
            entries.append(("hypothesis", f"{h.kind}: {h.rationale}", "chosen", h.to_dict()))
        base["hypotheses"] = tuple(chosen)
        if not chosen:
            return await stop("no hypothesis left (budget, cooldowns or playbook exhausted)")
        await flush()
        async with self._memory.lock:
            for h in chosen:
                self._memory.playbook.record(h.key, "pending", day)
            evidence_since = since.start if since is not None and self.config.evidence_since_alarm else None
            look = None
            if since is not None:
                self._memory.state.episode_windows_tried = since.windows
            if evidence_since:
                self._memory.state.episode_looks += 1
                look = self._memory.state.episode_looks
            await self._memory.save()
        self._phases.set_phase(AgentPhase.EXPERIMENTING)
        wait = self.config.experiment_wait_s
        outcomes = await self._decisions.run_in_background(wait, day, cid, version, model.spec, chosen, inputs, diagnosis,
                                                           evidence_since, look)
        if outcomes is None:
            return AgentCycleResult(phase=AgentPhase.EXPERIMENTING, experiments_running=tuple(h.key for h in chosen),
                                    notes=(f"experiments continue in the background after {wait:g} s",), **base)
        promoted = next((o.candidate_version for o in outcomes if o.outcome == "promoted"), None)
        awaiting = next((o.candidate_version for o in outcomes if o.outcome == "awaiting_approval"), None)
        return AgentCycleResult(
            phase=self._memory.rest_phase(), experiments=tuple(outcomes), promoted=promoted, awaiting_approval=awaiting,
            **base | {"champion_version": await self.registry.champion_version()},
        )

    async def _check_break(self, day: dt.date, cid: str, inputs: CycleInputs, model: Any, version: str,
                           findings: list[DriftFinding]) -> None:
        """Track the drift episode and, while one is open, test whether the champion has plainly broken
        (worse than a coin since the first alarm); if so, cut the market's size until a candidate passes."""
        cfg, st = self.config, self._memory.state
        async with self._memory.lock:
            if findings:
                st.last_alarm = max(f.date for f in findings)
                if st.episode_start is None:
                    st.episode_start, st.episode_windows_tried, st.episode_looks = min(f.date for f in findings)[:10], 0, 0
            elif (st.episode_start and not st.derisk and st.last_alarm
                  and (day - dt.date.fromisoformat(st.last_alarm[:10])).days > cfg.episode_quiet_days):
                # quiet long enough (days observed without an alarm): the episode is over
                st.episode_start, st.episode_windows_tried, st.episode_looks = None, 0, 0
            await self._memory.save()
        since = st.episode_start
        act = st.autonomy is not AutonomyLevel.LOCKDOWN  # lockdown observes only: the cut is recommended, not made
        if since is None or cfg.derisk_size_fraction >= 1.0 or (st.derisk and (st.derisk.get("applied", True) or not act)):
            return
        outcomes = await asyncio.to_thread(self._observer.realized_outcomes, inputs, model, since, day)
        verdict = break_test(outcomes, since, alpha=cfg.derisk_alpha, min_days=cfg.derisk_min_days)
        if verdict is None or not verdict.broken:
            return
        frac = cfg.derisk_size_fraction
        info = {"size_fraction": frac if act else 1.0, "applied": act, "since": day.isoformat(), "champion": version,
                "episode_start": since, "reason": verdict.summary, "evidence": verdict.to_dict()}
        async with self._memory.lock:
            st.derisk = info
            await self._memory.save()
        cut = "flat" if frac <= 0 else f"{frac:.0%} of size"
        if act:
            text, outcome = f"de-risk: {cut} until a candidate passes; champion {version} is worse than a coin: {verdict.summary}", "derisk"
        else:
            text, outcome = f"de-risk to {cut} recommended (lockdown: not done); champion {version} is worse than a coin: {verdict.summary}", "derisk_recommended"
        await self.journal.record("decision", text, trading_date=day, cycle_id=cid, outcome=outcome, payload=info)

    def _healing(self) -> bool:
        """True while the market is de-risked (its champion plainly broken): the agent keeps
        looking for a repair even on days without a new alarm."""
        d = self._memory.state.derisk
        return bool(d and d.get("applied", True))

    def _since_alarm(self, inputs: CycleInputs, day: dt.date) -> SinceAlarm | None:
        """The open episode's first alarm and the labelled rows (and complete test windows) since."""
        start = self._memory.state.episode_start
        if start is None:
            return None
        idx = inputs.features.index.intersection(inputs.labels.dropna().index).intersection(inputs.returns.dropna().index)
        rows = int(((idx >= pd.Timestamp(start[:10])) & (idx <= pd.Timestamp(day))).sum())
        return SinceAlarm(start[:10], rows, rows // self.config.wf_test_window)

    def _evidence_wait(self, since: SinceAlarm | None) -> str | None:
        """Why no experiment may run yet: the gate's windows since the alarm are not full, or None."""
        if since is None or not self.config.evidence_since_alarm:
            return None
        need = evidence_days_needed(self.config)
        if since.rows >= need:
            return None
        return (f"waiting for evidence since the first alarm on {since.start}: {since.rows} of {need} labelled days "
                f"(the gate compares candidates only on days after it)")

    async def wait_background(self, timeout: float | None = None) -> list[ExperimentOutcome] | None:
        """Wait for experiments left running by a cycle (tests, shutdown)."""
        return await self._decisions.wait_background(timeout)

    def _experiments_blocked(self, day: dt.date) -> str | None:
        state = self._memory.state
        if state.autonomy is AutonomyLevel.LOCKDOWN:
            return "lockdown: observe only"
        if state.paused:
            return "paused: experiments stopped (observation continues)"
        if state.pending:
            return f"candidate {state.pending['version']} is awaiting approval"
        if self._decisions.busy:
            return "experiments from an earlier cycle are still running"
        if self._memory.rollback_monitor.in_cooldown(day):
            return f"rollback cooldown until {self._memory.rollback_monitor.cooldown_until}"
        return None

    async def _bootstrap(self, day: dt.date, cid: str, inputs: CycleInputs) -> AgentCycleResult:
        """No champion yet: train the default spec, evaluate it, and promote (or await approval)."""
        iso, state = day.isoformat(), self._memory.state
        blocked = "lockdown: observe only" if state.autonomy is AutonomyLevel.LOCKDOWN else ("paused" if state.paused else None)
        if state.pending:
            blocked = f"candidate {state.pending['version']} is awaiting approval"
        if blocked:
            return AgentCycleResult(iso, cid, self._memory.rest_phase(), notes=(f"no champion; bootstrap not run ({blocked})",))
        hyp = Hypothesis("bootstrap", {}, "none", "first champion from the default spec")
        self._phases.set_phase(AgentPhase.EXPERIMENTING)
        outcomes = await self._decisions.run_batch(day, cid, None, ModelSpec.from_dict(self.config.default_spec), [hyp], inputs, None)
        o = outcomes[0]
        return AgentCycleResult(iso, cid, self._memory.rest_phase(), hypotheses=(hyp,), experiments=tuple(outcomes),
                                promoted=o.candidate_version if o.outcome == "promoted" else None,
                                awaiting_approval=o.candidate_version if o.outcome == "awaiting_approval" else None,
                                champion_version=await self.registry.champion_version())

    def status(self) -> dict[str, Any]:
        """Snapshot for the TUI's agent pane: phase, autonomy, detectors against thresholds, pending."""
        state = self._memory.state
        return {
            "market": self.market or "",
            "phase": self._phases.phase.value,
            "autonomy": state.autonomy.value,
            "paused": state.paused,
            "champion": state.champion_version,
            "pending": state.pending,
            "derisk": state.derisk,
            "episode_start": state.episode_start,
            "trials_since_promotion": state.trials_since_promotion,
            "rollback_watch": self._memory.rollback_monitor.to_dict(),
            "detectors": [{"stream": r.stream, "detector": r.detector, "statistic": r.statistic, "threshold": r.threshold}
                          for r in self._observer.readings()],
            "last_cycle": state.last_cycle,
        }
