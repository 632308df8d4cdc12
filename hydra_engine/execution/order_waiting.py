"""How the order manager waits: on events and the engine clock, never by polling.

A child order parks on its ``changed`` event or the clock's next patience deadline; while parked it
does not count as busy (``BusyTracker``), which is what lock-step drivers wait for (``wait_idle``).
Every wait goes through ``asyncio.wait`` on a future or task of its own: ``asyncio.wait_for`` on
Python 3.11 can swallow a cancellation that races the wake-up. A lost session is waited out (the
supervisor never gives up); ``OrderWaiter.broker_ready`` says whether the broker came back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Protocol

import structlog

from hydra_engine.broker.contracts import ContractMonth
from hydra_engine.broker.errors import NotConnected
from hydra_engine.broker.records import QuoteSnapshot
from hydra_engine.clock import Clock
from hydra_engine.execution.order_records import WorkingOrder, settled

log = structlog.get_logger(__name__)


class Supervised(Protocol):
    """The connection supervisor as the waiter sees it: running until the engine stops it."""

    @property
    def running(self) -> bool: ...


class BrokerLink(Protocol):
    """What the waiter needs of the broker: its state, a way to wait on it, and quotes."""

    @property
    def is_connected(self) -> bool: ...

    @property
    def state_known(self) -> bool: ...

    @property
    def supervisor(self) -> Supervised: ...

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None: ...

    async def get_quote(self, month: ContractMonth) -> QuoteSnapshot: ...


class BusyTracker:
    """How many child orders are doing something other than waiting on the clock.

    Lock-step drivers step the clock only when nothing is busy; each ``wait_idle`` call waits on a
    future of its own, resolved by the next busy change."""

    def __init__(self) -> None:
        self._busy = 0
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def count(self) -> int:
        return self._busy

    @property
    def idle(self) -> bool:
        return self._busy == 0

    def enter(self) -> None:
        self._change(+1)

    def leave(self) -> None:
        self._change(-1)

    def _change(self, delta: int) -> None:
        self._busy += delta
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def wait_idle(self, timeout_s: float, ready: Callable[[], bool] = lambda: True) -> None:
        """Return once nothing is busy and ``ready()`` holds; TimeoutError after ``timeout_s``.

        Unlike ``asyncio.wait_for`` on Python 3.11, a cancellation that races the wake-up is never
        swallowed, and one waiter never clears another's wake-up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._busy > 0 or not ready():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"order manager still busy after {timeout_s}s ({self._busy} active)")
            woken: asyncio.Future[None] = loop.create_future()
            self._waiters.add(woken)
            try:
                await asyncio.wait({woken}, timeout=remaining)
            finally:
                self._waiters.discard(woken)
                woken.cancel()

    def close(self) -> None:
        """Wake every waiter (each re-checks and waits again or returns)."""
        self._wake()


class OrderWaiter:
    """The waits of one child order: its events, the clock's deadlines and the broker's return."""

    def __init__(self, gateway: BrokerLink, clock: Clock, busy: BusyTracker) -> None:
        self._gw = gateway
        self._clock = clock
        self._busy = busy
        self._stopped = False

    async def changed(self, wo: WorkingOrder, timeout_s: float) -> bool:
        """True when an order event came within ``timeout_s`` real seconds."""
        wo.changed.clear()
        if settled(wo):
            return True
        changed = asyncio.ensure_future(wo.changed.wait())
        try:
            done, _ = await asyncio.wait({changed}, timeout=timeout_s)
        finally:
            changed.cancel()
        return changed in done

    async def changed_or_time(self, wo: WorkingOrder, deadline: dt.datetime) -> bool:
        """True when an order event came first; False when the clock reached ``deadline``.

        While parked here the order is not busy: a lock-step driver may step the clock."""
        wo.changed.clear()
        if settled(wo):
            return True
        changed: asyncio.Future[object] = asyncio.ensure_future(wo.changed.wait())
        timer: asyncio.Future[object] = asyncio.ensure_future(self._clock.sleep_until(deadline))
        wo.parked.set()
        self._busy.leave()
        try:
            done, _ = await asyncio.wait({changed, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._busy.enter()
            wo.parked.clear()
            changed.cancel()
            timer.cancel()
        return changed in done

    async def arrival_quote(self, month: ContractMonth, attempts: int = 5) -> QuoteSnapshot:
        """The quote an order starts from; a dropped session (nothing written or sent yet) is
        waited out and the request repeated."""
        for attempt in range(1, attempts + 1):
            try:
                return await self._gw.get_quote(month)
            except NotConnected:
                if attempt == attempts or not await self.broker_ready(month.local_symbol):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def broker_ready(self, what: str) -> bool:
        """Wait for the supervisor's reconnect and reconciliation (it never gives up); False when
        the gateway was stopped (engine shutdown) or refused for good."""
        gw = self._gw

        def ready() -> bool:
            return gw.is_connected and gw.state_known

        if not ready():
            log.warning("order.waiting_for_broker", what=what)
        while not ready():
            if self._stopped or not gw.supervisor.running:
                log.warning("order.broker_stopped", what=what)
                return False
            try:
                await gw.wait_until(lambda: ready() or self._stopped or not gw.supervisor.running, 60.0)
            except TimeoutError:
                continue
        return True

    def stop(self) -> None:
        """Engine stop: no order waits for the broker any more (its state is resolved on the next
        start, by orderRef, never by sending again)."""
        self._stopped = True
