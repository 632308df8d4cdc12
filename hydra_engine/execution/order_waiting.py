"""How the order manager waits: on events and the engine clock, never by polling.

A child order parks on its ``changed`` event or the clock's next patience deadline; while parked it
does not count as busy, which is what lock-step drivers wait for (``wait_idle``). Every wait goes
through ``asyncio.wait`` on a future or task of its own: ``asyncio.wait_for`` on Python 3.11 can
swallow a cancellation that races the wake-up. A lost session is waited out (the supervisor never
gives up) and a cancel that was in flight is sent again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Callable

import structlog

from hydra_engine.broker.contracts import ContractMonth
from hydra_engine.broker.errors import NotConnected
from hydra_engine.execution.order_records import WorkingOrder

log = structlog.get_logger(__name__)


class OrderWaitingMixin:
    """Busy accounting and the waits of ``OrderManager`` (mixed into it)."""

    _gw: Any
    _clock: Any
    _busy: int
    _idle_waiters: set[asyncio.Future[None]]
    _working: dict[str, WorkingOrder]

    # provided by OrderManager (annotations only, so the MRO finds its methods)
    _settled: Callable[[WorkingOrder], bool]
    _cancel: Callable[[WorkingOrder, str], None]

    @property
    def idle(self) -> bool:
        """True when no child order is doing anything but waiting on the clock."""
        return self._busy == 0

    async def wait_idle(self, timeout_s: float = 10.0, *, min_working: int = 0, symbol: str | None = None) -> None:
        """Lock-step drivers: return once every child order waits on the clock (or none runs),
        with at least ``min_working`` orders working (of ``symbol``, when given).

        Each wait is a future of its own resolved by the next busy change, awaited through
        ``asyncio.wait``: unlike ``asyncio.wait_for`` on Python 3.11, a cancellation that races
        the wake-up is never swallowed, and one waiter never clears another's wake-up."""

        def ready() -> bool:
            if self._busy > 0:
                return False
            working = self._working.values()
            n = len(working) if symbol is None else sum(1 for w in working if w.month.symbol == symbol)
            return n >= min_working

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not ready():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"order manager still busy after {timeout_s}s ({self._busy} active)")
            woken: asyncio.Future[None] = loop.create_future()
            self._idle_waiters.add(woken)
            try:
                await asyncio.wait({woken}, timeout=remaining)
            finally:
                self._idle_waiters.discard(woken)
                woken.cancel()

    def _set_busy(self, delta: int) -> None:
        self._busy += delta
        waiters, self._idle_waiters = self._idle_waiters, set()
        for w in waiters:
            if not w.done():
                w.set_result(None)


    async def _wait_changed(self, wo: WorkingOrder, timeout_s: float) -> bool:
        """True when an order event came within ``timeout_s`` real seconds (``asyncio.wait``, not
        ``wait_for``: a cancel racing the event is never swallowed on Python 3.11)."""
        wo.changed.clear()
        if self._settled(wo):
            return True
        changed = asyncio.ensure_future(wo.changed.wait())
        try:
            done, _ = await asyncio.wait({changed}, timeout=timeout_s)
        finally:
            changed.cancel()
        return changed in done

    async def _wait_changed_or_time(self, wo: WorkingOrder, deadline: dt.datetime) -> bool:
        """True when an order event came first; False when the clock reached ``deadline``."""
        wo.changed.clear()
        if self._settled(wo):
            return True
        changed = asyncio.ensure_future(wo.changed.wait())
        timer = asyncio.ensure_future(self._clock.sleep_until(deadline))
        wo.parked.set()
        self._set_busy(-1)
        try:
            done, _ = await asyncio.wait({changed, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._set_busy(+1)
            wo.parked.clear()
            changed.cancel()
            timer.cancel()
        return changed in done

    async def _arrival_quote(self, month: ContractMonth, attempts: int = 5) -> Any:
        """The quote an order starts from; a dropped session (nothing written or sent yet) is
        waited out and the request repeated."""
        for attempt in range(1, attempts + 1):
            try:
                return await self._gw.get_quote(month)
            except NotConnected:
                if attempt == attempts or not await self._await_broker(month.local_symbol):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _await_broker(self, what: str) -> bool:
        """Wait for the supervisor's reconnect and reconciliation (it never gives up); False when
        the gateway was stopped (engine shutdown) or refused for good."""
        gw = self._gw

        def ready() -> bool:
            return gw.is_connected and gw.state_known

        if not ready():
            log.warning("order.waiting_for_broker", what=what)
        while not ready():
            if not gw.supervisor.running:
                log.warning("order.broker_stopped", what=what)
                return False
            try:
                await gw.wait_until(lambda: ready() or not gw.supervisor.running, 60.0)
            except TimeoutError:
                continue
        return True

    async def _wait_reconnect(self, wo: WorkingOrder) -> bool:
        """Wait out a lost session for a working order; False when the gateway stopped (the
        order's state is then unknown and resolved on the next start)."""
        if not await self._await_broker(wo.order_ref):
            return False
        if wo.cancel_sent and wo.trade is not None and not wo.trade.isDone():
            wo.cancel_sent = False
            self._cancel(wo, "cancel re-sent after reconnect")
        return True
