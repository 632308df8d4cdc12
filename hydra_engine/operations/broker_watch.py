"""Watching the broker link for an operator: outages that are not the gateway's daily restart, and
a broker that is down while a decision is coming.

``BrokerWatch.check`` is one synchronous look (connected? inside the restart window? a decision
within the lead time?) that publishes ``BrokerOutage`` and ``BrokerDownBeforeDecision`` on the bus;
``start`` runs it every few wall seconds. Outage time is counted in wall seconds (how long the
operator's engine has been blind) and only outside the restart window: an outage that is the
restart raises nothing, one that outlasts the window is counted from the window's end. Decision
times are on the engine clock (the broker's in broker-time mode), a decision due inside the window
counting from the window's end, when the runner will run it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from hydra_engine.events import BrokerDownBeforeDecision, BrokerOutage, EngineEvent
from hydra_engine.markets import MarketConfig, last_decision_at_or_before, next_decision_after
from hydra_engine.operations.restart_window import RestartWindow
from hydra_engine.tasks import log_task_failure

log = structlog.get_logger(__name__)


class BrokerLink(Protocol):
    @property
    def is_connected(self) -> bool: ...


class NowSource(Protocol):
    def now(self) -> dt.datetime: ...


class EventSink(Protocol):
    def publish(self, event: EngineEvent) -> None: ...


class BrokerWatch:
    """Publishes an outage once per outage (and its end), and one warning per coming decision."""

    def __init__(self, broker: BrokerLink, clock: NowSource, bus: EventSink, markets: Sequence[MarketConfig], *,
                 window: RestartWindow | None, disconnect_after_s: float, down_before_decision_s: float,
                 check_s: float | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._broker = broker
        self._clock = clock
        self._bus = bus
        self.markets = tuple(markets)
        self.window = window
        self.disconnect_after_s = float(disconnect_after_s)
        self.down_before_decision_s = float(down_before_decision_s)
        self.check_s = check_s if check_s is not None else min(5.0, max(0.05, self.disconnect_after_s / 4))
        self._mono = monotonic
        self._down_since: float | None = None
        """Monotonic time the current outage was first seen (None while connected)."""
        self._outside_since: float | None = None
        """Monotonic time the current outage was first seen outside the restart window."""
        self._outage_published = False
        self._warned: set[tuple[str, dt.datetime]] = set()
        self._task: asyncio.Task[None] | None = None

    def check(self) -> None:
        """One look at the link and the coming decisions; publishes what it finds."""
        now, mono = self._clock.now(), self._mono()
        if self._broker.is_connected:
            if self._outage_published and self._down_since is not None:
                self._bus.publish(BrokerOutage(at=now, down_s=mono - self._down_since, ended=True))
            self._down_since = self._outside_since = None
            self._outage_published = False
            return
        if self._down_since is None:
            self._down_since = mono
        in_window = self.window is not None and self.window.contains(now)
        if in_window:
            self._outside_since = None  # the daily restart: expected, not counted
        else:
            if self._outside_since is None:
                self._outside_since = mono
            if not self._outage_published and mono - self._outside_since >= self.disconnect_after_s:
                self._outage_published = True
                detail = f"outside the restart window {self.window}" if self.window is not None else ""
                self._bus.publish(BrokerOutage(at=now, down_s=mono - self._down_since, detail=detail))
                log.warning("broker_watch.outage", down_s=round(mono - self._down_since, 1))
        if self.down_before_decision_s > 0 and not in_window:
            self._warn_coming_decisions(now)

    def _warn_coming_decisions(self, now: dt.datetime) -> None:
        lead = dt.timedelta(seconds=self.down_before_decision_s)
        self._warned = {w for w in self._warned if w[1] >= now}
        for m in self.markets:
            due = next_decision_after(m, now)
            if self.window is not None:
                due = self.window.defer(due)
                # a decision that fell inside the window is still to run when the window ends
                held = self.window.defer(last_decision_at_or_before(m, now)[1])
                if held >= now:
                    due = held
            key = (m.symbol, due)
            if due - now <= lead and key not in self._warned:
                self._warned.add(key)
                minutes = (due - now).total_seconds() / 60
                self._bus.publish(BrokerDownBeforeDecision(at=now, market=m.symbol, decision_at=due,
                                                           minutes_before=minutes))
                log.warning("broker_watch.down_before_decision", market=m.symbol, decision_at=due.isoformat(),
                            minutes_before=round(minutes, 1))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="broker-watch")
        self._task.add_done_callback(log_task_failure)

    async def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watch keeps watching
                log.exception("broker_watch.check_failed")
            await asyncio.sleep(self.check_s)  # wall seconds: outage time is the operator's time

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

