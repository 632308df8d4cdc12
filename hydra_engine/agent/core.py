"""What every part of the agent shares: phases, settings, persisted state and promotion bookkeeping.

Observation, experiments and operator controls are mixins over ``AgentCore`` so each concern has
its own module while all of them share one state object and one state lock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import structlog

from hydra_engine.agent.drift import DriftMonitor, PerformanceMonitor
from hydra_engine.agent.experiments import ExperimentExecutor
from hydra_engine.agent.hypotheses import Playbook, PlaybookConfig
from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.agent.promotion import GateConfig
from hydra_engine.agent.rollback import RollbackConfig, RollbackMonitor
from hydra_engine.agent.state import AgentState, AgentStateStore, AutonomyLevel
from hydra_engine.model.baseline import BaselineModel
from hydra_engine.model.registry import ModelRegistry

if TYPE_CHECKING:
    from hydra_engine.agent.decisions import ExperimentOutcome

log = structlog.get_logger(__name__)

__all__ = ["AgentConfig", "AgentCore", "AgentPhase"]


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


class AgentCore:
    """State, phase and persistence for ``AgentLoop``; not used on its own."""

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

    def _findings_cutoff(self, day: dt.date) -> str:
        """Oldest ISO date whose drift findings still count as evidence on ``day``."""
        return (day - dt.timedelta(days=self.config.findings_lookback_days)).isoformat()
