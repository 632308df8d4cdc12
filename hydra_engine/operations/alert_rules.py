"""Which engine events become operator alerts, and the bus consumer that raises them.

The engine publishes typed events (``hydra_engine.events``); ``alert_for`` maps each one that
matters to an ``Alert`` (pure, so every rule is testable on its own), and ``AlertRouter`` is the
one subscriber that feeds them to the ``Alerter``. Nothing in the engine calls the alerter directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from hydra_engine.events import (
    AgentDecision,
    AgentPhaseChanged,
    BreakerChanged,
    BrokerDownBeforeDecision,
    BrokerOutage,
    CycleFinished,
    EngineEvent,
    StaleLockFound,
)
from hydra_engine.operations.alert_kinds import AlertKind, Severity
from hydra_engine.operations.alerts import Alert, Alerter
from hydra_engine.tasks import log_task_failure

log = structlog.get_logger(__name__)

STOPPING_ERROR = "cancelled (engine stopping)"
"""A cycle cut short by a clean stop is not a failure worth an alert (``DailyCycle.run``)."""

WATCHED: tuple[type[EngineEvent], ...] = (
    BreakerChanged, CycleFinished, AgentDecision, AgentPhaseChanged, BrokerOutage, BrokerDownBeforeDecision,
    StaleLockFound,
)

_AGENT = {
    "awaiting_approval": (AlertKind.APPROVAL_NEEDED, Severity.INFO),
    "rolled_back": (AlertKind.ROLLBACK, Severity.WARNING),
    "rollback_recommended": (AlertKind.ROLLBACK, Severity.WARNING),
    "derisked": (AlertKind.DERISK, Severity.WARNING),
    "derisk_recommended": (AlertKind.DERISK, Severity.WARNING),
}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def alert_for(event: EngineEvent) -> Alert | None:
    """The alert ``event`` calls for, or None."""
    if isinstance(event, BreakerChanged):
        if not event.tripped or event.phase not in ("", "TRIGGERED"):
            return None
        return Alert(AlertKind.BREAKER_TRIPPED, Severity.CRITICAL,
                     f"breaker {event.breaker} tripped: trading is {event.trading_state}"
                     + (f" ({event.reason})" if event.reason else ""), event.at,
                     {"breaker": event.breaker, "trading_state": event.trading_state, "reason": event.reason})
    if isinstance(event, CycleFinished):
        s = event.summary
        where = {"market": event.market, "trading_date": event.trading_date.isoformat(), "trigger": s.get("trigger")}
        if event.outcome == "FAILED" and s.get("error") != STOPPING_ERROR:
            return Alert(AlertKind.CYCLE_FAILED, Severity.WARNING,
                         f"cycle {event.market} {event.trading_date} failed: {s.get('error') or 'no error recorded'}",
                         event.at, {**where, "error": s.get("error")})
        if event.outcome == "SKIPPED":
            return Alert(AlertKind.CYCLE_SKIPPED, Severity.WARNING,
                         f"cycle {event.market} {event.trading_date} skipped: {s.get('skipped') or 'no reason recorded'}",
                         event.at, {**where, "reason": s.get("skipped")})
        return None
    if isinstance(event, AgentDecision):
        rule = _AGENT.get(event.decision)
        if rule is None:
            return None
        kind, severity = rule
        text = f"{event.market}: {event.summary}"
        if kind is AlertKind.APPROVAL_NEEDED:
            text += f" (approve with: hydra-tui approve --market {event.market})"
        return Alert(kind, severity, text, event.at, {"market": event.market, "decision": event.decision,
                                                      "version": event.version, "journal_id": event.journal_id})
    if isinstance(event, BrokerOutage):
        if event.ended:
            return Alert(AlertKind.RECONNECTED, Severity.INFO, f"broker back after {_minutes(event.down_s)}",
                         event.at, {"down_s": round(event.down_s, 1)})
        return Alert(AlertKind.DISCONNECTED, Severity.CRITICAL,
                     f"broker unreachable for {_minutes(event.down_s)}" + (f": {event.detail}" if event.detail else ""),
                     event.at, {"down_s": round(event.down_s, 1), "detail": event.detail})
    if isinstance(event, BrokerDownBeforeDecision):
        return Alert(AlertKind.BROKER_DOWN_BEFORE_DECISION, Severity.CRITICAL,
                     f"broker down {event.minutes_before:.0f} min before {event.market}'s decision at "
                     f"{event.decision_at:%Y-%m-%d %H:%M} UTC: the cycle is skipped unless it returns",
                     event.at, {"market": event.market, "decision_at": event.decision_at.isoformat()})
    if isinstance(event, StaleLockFound):
        who = f"process {event.pid}" if event.pid is not None else "a process"
        return Alert(AlertKind.STALE_LOCK, Severity.WARNING,
                     f"stale store lock: {who} did not stop cleanly (killed or crashed); "
                     "the store was checked and reopened, see the journal for what the restart recovered",
                     event.at, {"path": event.path, "pid": event.pid})
    return None


class AlertRouter:
    """The bus subscriber that turns events into alerts; ``on_event`` sees every watched event."""

    def __init__(self, bus: Any, alerter: Alerter, *, on_event: Callable[[EngineEvent], None] | None = None,
                 buffer: int = 1000) -> None:
        self._sub = bus.subscribe(buffer, types=WATCHED)
        self._alerter = alerter
        self._on_event = on_event
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alert-router")
        self._task.add_done_callback(log_task_failure)

    async def _run(self) -> None:
        async for event in self._sub:
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:  # noqa: BLE001 - a hook's failure must not stop the alerts
                    log.exception("alert_router.hook_failed", event=type(event).__name__)
            alert = alert_for(event)
            if alert is not None:
                self._alerter.raise_alert(alert)

    async def stop(self) -> None:
        """Stop taking events (those already buffered are handled first, bounded by the caller)."""
        self._sub.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 2.0)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
