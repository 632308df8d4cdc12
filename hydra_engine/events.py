"""Typed engine events and the fan-out bus that carries them to the TUI, logs and tests.

The engine publishes without ever waiting: ``EventBus.publish`` is synchronous and each subscriber
has its own bounded buffer. A subscriber that falls behind (a frozen terminal, a slow test) loses
its oldest events and has the loss counted, so a slow reader can never stall trading.
Events are frozen, keyword-only dataclasses; ``at`` comes from the engine's Clock.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, AsyncIterator, Mapping

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineEvent:
    """Base of every engine event. ``at`` is the engine clock's UTC time of the event."""

    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionChanged(EngineEvent):
    """Broker connection state: ``state`` is CONNECTING, CONNECTED, DISCONNECTED or FAILED."""

    connected: bool
    state: str
    host: str = ""
    port: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountUpdated(EngineEvent):
    """Account figures in account currency; ``daily_pnl`` is None when the previous mark is unknown."""

    account: str
    net_liquidation: float
    cash: float
    currency: str = "USD"
    daily_pnl: float | None = None
    peak_equity: float | None = None
    drawdown_fraction: float | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionsUpdated(EngineEvent):
    """Signed positions in contracts keyed by local symbol (e.g. ``CLZ6``)."""

    positions: Mapping[str, float]
    known: bool = True
    """False when the broker has not reported positions: unknown is never flat."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdated(EngineEvent):
    """An order's status in the store's vocabulary (INTENT, SENT, ACKED, FILLED, CANCELLED...)."""

    order_ref: str
    status: str
    symbol: str = ""
    action: str = ""
    quantity: float = 0.0
    filled: float = 0.0
    limit_price: float | None = None
    perm_id: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FillRecorded(EngineEvent):
    """One execution journalled (exactly once per ``exec_id``); slippage is a signed cost."""

    exec_id: str
    symbol: str
    direction: str
    quantity: float
    fill_price: float
    order_ref: str = ""
    contract_month: str = ""
    predicted_slippage: float | None = None
    actual_slippage: float | None = None
    commission: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleStarted(EngineEvent):
    """A daily cycle began for (market, trading date); ``trigger`` is schedule, catch-up or force."""

    market: str
    trading_date: date
    trigger: str = "schedule"


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleFinished(EngineEvent):
    """A daily cycle ended; ``outcome`` is FINISHED, FAILED or SKIPPED with the summary mapping."""

    market: str
    trading_date: date
    outcome: str
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPhaseChanged(EngineEvent):
    """The self-healing agent moved between IDLE, OBSERVING, ... AWAITING_APPROVAL, PAUSED."""

    phase: str
    previous: str = ""
    detail: str = ""
    market: str = ""
    """The market (or group) whose agent moved; '' for the agents together."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExperimentUpdated(EngineEvent):
    """An agent experiment's progress: ``status`` QUEUED, RUNNING, DONE, FAILED or TIMED_OUT."""

    experiment_id: str
    status: str
    hypothesis: str = ""
    progress_fraction: float = 0.0
    """0..1 of the walk-forward windows evaluated."""
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRequested(EngineEvent):
    """Supervised autonomy: a candidate passed the promotion gate and waits for ``approve``."""

    version: str
    summary: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChampionChanged(EngineEvent):
    """The model used for signals changed (promotion or rollback)."""

    version: str
    previous: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerChanged(EngineEvent):
    """A risk breaker tripped or cleared; ``trading_state`` is ACTIVE, REDUCING or HALTED after it."""

    breaker: str
    tripped: bool
    trading_state: str
    reason: str = ""
    phase: str = ""
    """The breaker's new phase: ACTIVE, TRIGGERED or COOLDOWN ('' when unknown)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseChanged(EngineEvent):
    """Operator pause: no new orders or experiments while paused; observation continues."""

    paused: bool
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorJournalled(EngineEvent):
    """A row was written to the operator journal (command, unexplained position change, note)."""

    kind: str
    message: str
    command: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDecision(EngineEvent):
    """The agent decided something an operator should hear about, as its journal recorded it.

    ``decision``: ``promoted``, ``awaiting_approval``, ``rolled_back`` (automatic), ``rollback_recommended``
    (lockdown), ``derisked`` or ``derisk_recommended`` (lockdown). Published from the agent journal
    (``operations.agent_watch``), so decisions made by experiments finishing in the background count too."""

    market: str
    decision: str
    version: str = ""
    summary: str = ""
    journal_id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerOutage(EngineEvent):
    """The broker has been unreachable for ``down_s`` wall seconds outside the gateway's restart
    window (``ended`` False), or came back after such an outage (``ended`` True)."""

    down_s: float
    ended: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerDownBeforeDecision(EngineEvent):
    """The broker is down and ``market``'s decision is due at ``decision_at`` (UTC, engine clock)."""

    market: str
    decision_at: datetime
    minutes_before: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StaleLockFound(EngineEvent):
    """At start the store's lock file still named a process that no longer held it: the previous
    engine on this store did not stop cleanly (killed, crashed, power lost)."""

    path: str
    pid: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRaised(EngineEvent):
    """An operator alert was handled: ``outcome`` DELIVERED, SUPPRESSED (rate limit), FAILED or
    NO_CHANNEL (none configured); it is in the ops journal either way."""

    kind: str
    severity: str
    message: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEvent(EngineEvent):
    """A structured log line for the TUI's log pane."""

    level: str
    event: str
    logger: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)


_CLOSED = object()


class Subscription:
    """One subscriber's bounded buffer. Iterate with ``async for``; ``close()`` ends the iteration."""

    def __init__(self, bus: EventBus, maxsize: int, types: tuple[type[EngineEvent], ...] | None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize = {maxsize}: must be at least 1")
        self._bus = bus
        self._types = types
        self._buffer: collections.deque[Any] = collections.deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0
        """Events discarded because this subscriber fell behind (oldest first)."""
        self.delivered = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return sum(1 for e in self._buffer if e is not _CLOSED)

    def _offer(self, event: EngineEvent) -> None:
        if self._closed:
            return
        if self._types is not None and not isinstance(event, self._types):
            return
        if len(self._buffer) >= self._maxsize:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(event)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> EngineEvent | None:
        """The next buffered event, or None when the buffer is empty."""
        if self._buffer and self._buffer[0] is not _CLOSED:
            self.delivered += 1
            return self._buffer.popleft()
        return None

    async def get(self) -> EngineEvent:
        """Wait for the next event; raises ``StopAsyncIteration`` once closed and drained."""
        while True:
            if self._buffer:
                item = self._buffer[0]
                if item is _CLOSED:
                    raise StopAsyncIteration
                self._buffer.popleft()
                self.delivered += 1
                return item
            if self._closed:
                raise StopAsyncIteration
            if self._waiter is not None:
                raise RuntimeError("a Subscription has one consumer: subscribe again for another reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[EngineEvent]:
        return self

    async def __anext__(self) -> EngineEvent:
        return await self.get()

    def close(self) -> None:
        """Stop receiving; events already buffered are still delivered, then iteration ends."""
        if self._closed:
            return
        self._closed = True
        self._buffer.append(_CLOSED)
        self._bus._remove(self)
        self._wake()


class EventBus:
    """Fan-out of engine events to any number of subscribers; publishing never blocks."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self.published = 0

    def subscribe(
        self, maxsize: int = 1000, *, types: tuple[type[EngineEvent], ...] | None = None
    ) -> Subscription:
        """A new subscriber receiving events published from now on (optionally only ``types``)."""
        self._bind_loop()
        sub = Subscription(self, maxsize, types)
        self._subs.append(sub)
        return sub

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def _bind_loop(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._thread_id = threading.get_ident()
        except RuntimeError:
            pass

    def publish(self, event: EngineEvent) -> None:
        """Hand ``event`` to every subscriber. From another thread this is forwarded to the loop."""
        if not isinstance(event, EngineEvent):
            raise TypeError(f"publish() takes an EngineEvent, got {type(event).__name__}")
        if (
            self._loop is not None
            and self._thread_id is not None
            and threading.get_ident() != self._thread_id
            and not self._loop.is_closed()
        ):
            self._loop.call_soon_threadsafe(self._deliver, event)
            return
        self._deliver(event)

    def _deliver(self, event: EngineEvent) -> None:
        self.published += 1
        for sub in tuple(self._subs):
            sub._offer(event)

    def _remove(self, sub: Subscription) -> None:
        try:
            self._subs.remove(sub)
        except ValueError:
            pass

    def close(self) -> None:
        """End every subscription (their buffered events are still delivered)."""
        for sub in tuple(self._subs):
            sub.close()

    def drop_counts(self) -> dict[int, int]:
        """Dropped-event counts per live subscription (keyed by ``id``), for status screens."""
        return {id(s): s.dropped for s in self._subs}


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50}


class LogToBus:
    """A structlog processor that mirrors log entries at ``min_level`` or above as ``LogEvent``s.

    Put it in the processor chain before the renderer; it returns the entry unchanged, so the
    log file keeps everything while the TUI's log pane receives typed events.
    """

    def __init__(self, bus: EventBus, clock: Any = None, min_level: str = "info") -> None:
        if min_level.lower() not in _LEVELS:
            raise ValueError(f"min_level {min_level!r}: must be one of debug, info, warning, error, critical")
        self._bus = bus
        self._clock = clock
        self._min = _LEVELS[min_level.lower()]

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        level = str(event_dict.get("level", method_name)).lower()
        if _LEVELS.get(level, 20) >= self._min:
            at = self._clock.now() if self._clock is not None else datetime.now(timezone.utc)
            fields = {k: v for k, v in event_dict.items() if k not in ("event", "level", "timestamp", "logger")}
            self._bus.publish(LogEvent(
                at=at, level=level, event=str(event_dict.get("event", "")),
                logger=str(event_dict.get("logger", "")), fields=fields,
            ))
        return event_dict
