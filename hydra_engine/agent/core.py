"""What every part of the agent shares: phases, settings and the persisted memory with its lock.

The agent's parts (``Observer``, ``DecisionMaker``, ``AgentControls``) are separate objects, each
given what it uses in its constructor. ``AgentMemory`` is the one owner of the persisted record, so
every change is made under one lock and every save writes one consistent document; a part whose
own live state is persisted (the observer's detectors) plugs in through ``PersistedPart``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import structlog

from hydra_engine.agent.hypotheses import Playbook, PlaybookConfig
from hydra_engine.agent.promotion import GateConfig
from hydra_engine.agent.rollback import RollbackConfig, RollbackMonitor
from hydra_engine.agent.state import AgentState, AgentStateStore, AutonomyLevel

log = structlog.get_logger(__name__)

__all__ = ["AgentConfig", "AgentMemory", "AgentPhase", "PersistedPart", "PhaseSink", "PhaseTracker", "trading_day"]


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
    wf_test_window: int = 20
    """Trading days per walk-forward test window. Short windows mean the first windows wholly after
    an alarm (the gate's evidence since it) complete within weeks, and each fold's model is refitted
    often enough to follow a change."""
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
    derisk_size_fraction: float = 0.0
    """Share of a market's size kept while its champion is plainly broken (worse than a coin since
    the episode's first alarm) and no candidate has passed: 0 goes flat, 1 turns de-risking off."""
    derisk_alpha: float = 0.01
    """Significance of the plain-break test (split between the log-loss and hit-rate tests)."""
    derisk_min_days: int = 20
    """Realized days after the first alarm before the plain-break test is made."""
    episode_quiet_days: int = 60
    """Calendar days without an alarm that close a drift episode (when not de-risked)."""
    evidence_since_alarm: bool = True
    """The gate compares a candidate with the champion only on the walk-forward windows wholly after
    the episode's first alarm (fresh evidence: the alarm was decided on the days before it), and the
    agent runs no experiment until those windows hold ``gate.min_oos_days``; the deflated Sharpe
    still reads the candidate's whole walk-forward. False: every window of the full history counts."""
    executor: str = field(default="local", metadata={"choices": ("local", "dask")})
    """Where experiments run: "local" (a fresh subprocess each on this machine) or "dask" (a
    Dask ``distributed`` cluster at ``scheduler``; the optional extra ``.[dask]``)."""
    scheduler: str | None = None
    """The Dask scheduler's address (``tcp://host:port``) when ``executor = "dask"``."""


def trading_day(value: str | None) -> dt.date:
    """The ISO date recorded with a decision, or today when none was."""
    return dt.date.fromisoformat(value) if value else dt.date.today()


class PhaseSink(Protocol):
    """Where a part reads and reports the agent's phase."""

    @property
    def phase(self) -> AgentPhase: ...

    def set_phase(self, phase: AgentPhase) -> None: ...


class PhaseTracker:
    """The agent's current phase; every change is logged and told to the subscriber (the engine)."""

    def __init__(self, on_phase: Callable[[AgentPhase], object] | None = None, market: str | None = None) -> None:
        self._on_phase = on_phase
        self._market = market
        self._phase = AgentPhase.IDLE

    @property
    def phase(self) -> AgentPhase:
        return self._phase

    def set_phase(self, phase: AgentPhase) -> None:
        if phase is self._phase:
            return
        self._phase = phase
        log.info("agent.phase", phase=phase.value, market=self._market)
        if self._on_phase is not None:
            try:
                self._on_phase(phase)
            except Exception:  # noqa: BLE001 - a broken subscriber must not break the agent
                log.exception("agent.on_phase_failed", phase=phase.value)


class PersistedPart(Protocol):
    """A part whose live state is kept in the persisted ``AgentState`` record."""

    def restore(self, state: AgentState) -> None:
        """Rebuild the live state from the record just loaded."""
        ...

    def snapshot_into(self, state: AgentState) -> None:
        """Write the live state into the record about to be saved."""
        ...


class AgentMemory:
    """The persisted record, the playbook and rollback watch built from it, and the one state lock.

    Holders of ``lock`` may change ``state``, ``playbook`` and ``rollback_monitor`` and then
    ``save()``. ``load()`` replaces the playbook and the rollback monitor, so parts read them from
    here at use time instead of keeping their own reference.
    """

    def __init__(self, store: AgentStateStore, config: AgentConfig, parts: Sequence[PersistedPart] = ()) -> None:
        self._store = store
        self._config = config
        self._parts = tuple(parts)
        self.lock = asyncio.Lock()
        self.state = AgentState(autonomy=config.initial_autonomy)
        self.playbook = Playbook(config.playbook)
        self.rollback_monitor = RollbackMonitor(config.rollback)

    async def load(self) -> bool:
        """Load the persisted record (if any) and rebuild the live parts from it; True if one existed."""
        loaded = await self._store.load()
        if loaded is not None:
            self.state = loaded
        for part in self._parts:
            part.restore(self.state)
        self.playbook = Playbook(self._config.playbook, self.state.playbook)
        self.rollback_monitor = RollbackMonitor(self._config.rollback, self.state.rollback)
        return loaded is not None

    async def save(self) -> None:
        s = self.state
        for part in self._parts:
            part.snapshot_into(s)
        s.playbook = self.playbook.to_dict()
        s.rollback = self.rollback_monitor.to_dict()
        await self._store.save(s)

    def rest_phase(self) -> AgentPhase:
        """The phase between cycles: awaiting approval, paused or idle."""
        if self.state.pending:
            return AgentPhase.AWAITING_APPROVAL
        return AgentPhase.PAUSED if self.state.paused else AgentPhase.IDLE

    def end_episode(self) -> dict[str, Any] | None:
        """The champion changed (caller holds ``lock``): its episode and any de-risk end with it, so
        the new champion is judged on its own evidence. Returns the de-risk lifted, if one was in force."""
        lifted, self.state.derisk = self.state.derisk, None
        self.state.episode_start = None
        self.state.episode_windows_tried = 0
        self.state.episode_looks = 0
        return lifted

    def record_promotion(self, version: str, previous: str | None, info: dict[str, Any]) -> dict[str, Any] | None:
        """Bookkeeping after a promotion (caller holds ``lock``): watch it, reset the trial count, end
        the episode. Returns the de-risk this lifted, if any (the caller journals it).

        A predecessor that was cut for being plainly worse than a coin is not a fallback: the new
        champion is then not shadowed against it (a rollback would put the broken model back at full
        size); its own detectors and the plain-break test judge it instead."""
        broken = bool(self.state.derisk and self.state.derisk.get("applied", True))
        if previous and not broken:
            self.rollback_monitor.start_watch(version, previous)
        elif broken:
            self.rollback_monitor.stop_watch()
        self.state.trials_since_promotion = 0
        self.state.trial_sharpes = []
        self.state.last_promotion = info.get("trading_date")
        self.playbook.record(info["hypothesis_key"], "accepted", trading_day(info.get("trading_date")))
        return self.end_episode()
