"""Operator alerts: rate-limited per kind, delivered to the configured channels, always journalled.

``Alerter.raise_alert`` decides at once (so a burst is limited exactly) and delivers in a tracked
task, so neither the event consumer nor the engine waits on a slow command or webhook. Each alert
becomes one ops-journal entry (kind ALERT, ``command`` = the alert kind) whose detail says what
happened to it: DELIVERED, SUPPRESSED by the rate limit, FAILED (with each channel's error) or
NO_CHANNEL. An ``AlertRaised`` event follows on the bus for the TUI.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import socket
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from hydra_engine.events import AlertRaised, EngineEvent
from hydra_engine.operations.alert_kinds import AlertKind, AlertOutcome, Severity
from hydra_engine.operations.alert_sinks import AlertDeliveryError, AlertSink
from hydra_engine.store.ops_journal import OpsKind

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing an operator should hear about; ``at`` is the engine clock's UTC time."""

    kind: AlertKind
    severity: Severity
    message: str
    at: dt.datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """What happened to one alert (kept in a short history for the heartbeat and tests)."""

    kind: str
    outcome: AlertOutcome
    at: dt.datetime
    message: str
    errors: Mapping[str, str] = field(default_factory=dict)


class OpsRecorder(Protocol):
    """The ops journal as the alerter writes it (``Store.ops`` fits)."""

    async def record(self, kind: OpsKind | str, message: str, *, command: str = "", actor: str = "operator",
                     detail: Mapping[str, Any] | None = None) -> int: ...


class EventSink(Protocol):
    def publish(self, event: EngineEvent) -> None: ...


class RateLimiter:
    """At most one delivery per key every ``min_interval_s`` (monotonic seconds); counts the rest."""

    def __init__(self, min_interval_s: float, now: Callable[[], float] = time.monotonic) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s = {min_interval_s}: must be 0 or more")
        self.min_interval_s = float(min_interval_s)
        self._now = now
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        """``(allowed, suppressed before this one)``; an allowed key starts a new interval."""
        now = self._now()
        last = self._last.get(key)
        if last is not None and now - last < self.min_interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        self._last[key] = now
        return True, self._suppressed.pop(key, 0)


def alert_context(*, account: str, mode: str, store: str) -> dict[str, Any]:
    """Who raised it: the fields every alert's JSON carries besides the alert itself."""
    return {"account": account, "mode": mode, "store": store, "host": socket.gethostname(), "pid": os.getpid()}


class Alerter:
    """Rate limit, deliver to every sink, journal, publish. One per engine."""

    HISTORY = 200

    def __init__(self, sinks: Sequence[AlertSink], journal: OpsRecorder, *, min_interval_s: float,
                 kinds: Collection[str] | None = None, context: Mapping[str, Any] | None = None,
                 bus: EventSink | None = None, now: Callable[[], float] = time.monotonic) -> None:
        self.sinks = tuple(sinks)
        self._journal = journal
        self._bus = bus
        self._limiter = RateLimiter(min_interval_s, now)
        self._kinds = frozenset(kinds) if kinds is not None else frozenset(k.value for k in AlertKind)
        self._context = dict(context or {})
        self._tasks: set[asyncio.Task[AlertRecord]] = set()
        self.history: collections.deque[AlertRecord] = collections.deque(maxlen=self.HISTORY)
        """The latest alerts and their outcomes, newest last (bounded)."""

    def enabled(self, kind: AlertKind | str) -> bool:
        return str(kind) in self._kinds

    def raise_alert(self, alert: Alert) -> asyncio.Task[AlertRecord] | None:
        """Decide now (kind enabled? rate limit?), then deliver and journal in a tracked task."""
        if not self.enabled(alert.kind):
            log.debug("alert.kind_disabled", kind=str(alert.kind))
            return None
        allowed, suppressed_before = self._limiter.allow(str(alert.kind))
        task = asyncio.get_running_loop().create_task(self._handle(alert, allowed, suppressed_before),
                                                      name=f"alert-{alert.kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def payload(self, alert: Alert, suppressed_before: int = 0) -> dict[str, Any]:
        """The JSON a command or webhook receives."""
        return {
            "kind": str(alert.kind), "severity": str(alert.severity), "message": alert.message,
            "at": alert.at.isoformat(), "wall_time": dt.datetime.now(dt.timezone.utc).isoformat(),
            "detail": dict(alert.detail), "suppressed_before": suppressed_before, **self._context,
        }

    async def _handle(self, alert: Alert, allowed: bool, suppressed_before: int) -> AlertRecord:
        errors: dict[str, str] = {}
        if not allowed:
            outcome = AlertOutcome.SUPPRESSED
        elif not self.sinks:
            outcome = AlertOutcome.NO_CHANNEL
        else:
            body = self.payload(alert, suppressed_before)
            results = await asyncio.gather(*(s.deliver(body) for s in self.sinks), return_exceptions=True)
            for sink, res in zip(self.sinks, results):
                if isinstance(res, AlertDeliveryError):
                    errors[sink.name] = str(res)
                elif isinstance(res, BaseException):
                    if isinstance(res, asyncio.CancelledError):
                        raise res
                    errors[sink.name] = f"{type(res).__name__}: {res}"
            outcome = AlertOutcome.FAILED if errors else AlertOutcome.DELIVERED
        record = AlertRecord(str(alert.kind), outcome, alert.at, alert.message, errors)
        self.history.append(record)
        detail = {"outcome": outcome.value, "severity": str(alert.severity), "channels": [s.name for s in self.sinks],
                  "errors": errors, "suppressed_before": suppressed_before, "alert": dict(alert.detail)}
        try:
            await self._journal.record(OpsKind.ALERT, alert.message, command=str(alert.kind), actor="alerts", detail=detail)
        except Exception:  # noqa: BLE001 - a closed store must not turn an alert into a crash
            log.exception("alert.journal_failed", kind=str(alert.kind))
        level = log.warning if outcome is AlertOutcome.FAILED else log.info
        level("alert.raised", kind=str(alert.kind), severity=str(alert.severity), outcome=outcome.value,
              message=alert.message, errors=errors or None)
        if self._bus is not None:
            self._bus.publish(AlertRaised(at=alert.at, kind=str(alert.kind), severity=str(alert.severity),
                                          message=alert.message, outcome=outcome.value,
                                          detail="; ".join(f"{k}: {v}" for k, v in errors.items())))
        return record

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for deliveries under way; True when none is left."""
        live = [t for t in self._tasks if not t.done()]
        if not live:
            return True
        _, pending = await asyncio.wait(live, timeout=timeout_s)
        return not pending

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Let deliveries under way finish (bounded), then cancel what is left."""
        await self.drain(timeout_s)
        left = [t for t in self._tasks if not t.done()]
        for t in left:
            t.cancel()
        await asyncio.gather(*left, return_exceptions=True)
