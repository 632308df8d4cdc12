"""Step 6 of the cycle and what outlives it: one tracked task per market moving the position to its
target in the execution session."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog

from hydra_engine.broker.errors import NotConnected, StateUnknown
from hydra_engine.execution.sessions import session_start
from hydra_engine.markets import MarketConfig, local_date, trading_date_at
from hydra_engine.tasks import log_task_failure

if TYPE_CHECKING:
    from hydra_engine.broker.contracts import ContractMonth
    from hydra_engine.clock import Clock
    from hydra_engine.execution.cycle import CycleConfig
    from hydra_engine.ports import Broker, CycleStore, OrderRouter

log = structlog.get_logger(__name__)

STATE_RETRIES = 6
"""Tries of an execution whose broker state is unknown (disconnected or not yet reconciled)."""
STATE_WAIT_S = 30.0
"""Real seconds each try waits for the connection (and its reconciliation) to come back."""


@dataclass(slots=True)
class ExecutionTicket:
    """One market's order work started by a cycle (the task keeps running after the cycle)."""

    market: str
    trading_date: dt.date
    target: int
    task: Any
    """The ``asyncio.Task`` working it."""
    waiting_until: dt.datetime | None = None
    """Set while the task sleeps on the clock until the next session opens (the engine is idle)."""
    session_date: dt.date | None = None
    """Trading date of the session the orders are worked in (D+1 for a decision after D's close)."""



class ExecutionDesk:
    """Step 6 of the cycle and what outlives it: one tracked task per market moving the position to
    its target. A target decided after the close waits (asleep on the engine clock) for the next
    session's open, then the order manager works the orders on their patience schedule. Markets
    may place at the same time: the gateway serialises its position and account requests."""

    def __init__(self, broker: Broker, order_manager: OrderRouter, store: CycleStore, clock: Clock,
                 config: CycleConfig) -> None:
        self.broker = broker
        self.order_manager = order_manager
        self.store = store
        self.clock = clock
        self.config = config
        self.tickets: dict[str, ExecutionTicket] = {}

    async def start(self, m: MarketConfig, day: dt.date | None, target: int, month: ContractMonth | None, *,
                    liquid: bool | None = None) -> str:
        """Start moving ``m`` to ``target``; returns what was done (for the cycle summary)."""
        held = await self._conflict_hold(m.symbol)
        if held:
            return held
        now = self.clock.now()
        start_at = None
        if self.config.wait_for_session:
            start_at = session_start(getattr(month, "details", None), now,
                                          liquid=self.config.liquid_hours_only if liquid is None else liquid)
        waiting = start_at if start_at is not None and start_at > now else None
        session_day = trading_date_at(m, waiting or now)
        ticket = ExecutionTicket(m.symbol, day or local_date(m, now), target, None,
                                 waiting_until=waiting, session_date=session_day)
        ticket.task = asyncio.get_running_loop().create_task(
            self._execute(m, target, day, ticket), name=f"execute-{m.symbol}-{ticket.trading_date.isoformat()}"
        )
        ticket.task.add_done_callback(log_task_failure)
        self.tickets[m.symbol] = ticket
        if ticket.waiting_until is not None:
            return f"scheduled: target {target} from {ticket.waiting_until.isoformat()} (next session)"
        return await self._submitted(ticket.task, m.symbol)

    async def _execute(self, m: MarketConfig, target: int, day: dt.date | None, ticket: ExecutionTicket) -> Any:
        if ticket.waiting_until is not None:
            log.info("runner.execution_scheduled", market=m.symbol, at=ticket.waiting_until.isoformat(), target=target)
            await self.clock.sleep_until(ticket.waiting_until)
            ticket.waiting_until = None
            if await self._conflict_hold(m.symbol):  # an alarm raised while it slept
                return None
        # the order's session, not the decision's date: the daily-P&L base is the close mark of the
        # last completed session before it, and the contract month is the front month as of it
        session_day = trading_date_at(m, self.clock.now()) if ticket.session_date is None else ticket.session_date
        for attempt in range(1, STATE_RETRIES + 1):  # the broker's state unknown: trading waits, then goes on
            try:
                res = await self.order_manager.move_to_target(m, target, equity=self.store.equity, trading_date=session_day)
                break
            except (StateUnknown, NotConnected, ConnectionError) as exc:
                if attempt == STATE_RETRIES:
                    raise
                log.warning("runner.execution_waits_for_broker", market=m.symbol, attempt=attempt, error=str(exc))
                await self.broker.ensure_connected(timeout_s=STATE_WAIT_S)
                await asyncio.sleep(min(16.0, 2.0 ** (attempt - 1)))
        log.info("runner.execution_done", market=m.symbol, trading_date=str(day), target=target,
                 filled=getattr(res, "filled", None), reasons=list(getattr(res, "reasons", ()) or ()))
        return res

    async def _conflict_hold(self, symbol: str) -> str:
        """Why ``symbol`` must not trade now (an open conflicting-fill alarm in the store), or ''."""
        alarms = getattr(self.store, "fill_conflicts", None)
        if alarms is None or not await alarms.blocked(symbol):
            return ""
        log.warning("runner.execution_held", market=symbol, reason="fill_conflict")
        return (f"waiting: a conflicting fill under a known execId is open for {symbol}; "
                "check it against the broker, then clear it (Store.fill_conflicts.clear)")

    async def _placed(self, symbol: str) -> None:
        """Return once an order of ``symbol`` is working and the order manager is idle (parked)."""
        await self.order_manager.wait_idle(self.config.submit_timeout_s, min_working=1, symbol=symbol)

    async def _submitted(self, task: asyncio.Task[Any], symbol: str) -> str:
        """Wait until the orders are placed (then parked on their schedule) or the task ended."""
        om = self.order_manager
        idle = asyncio.ensure_future(self._placed(symbol))
        try:
            await asyncio.wait({task, idle}, timeout=self.config.submit_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)
        if task.done():
            if task.cancelled():
                return "cancelled"
            exc = task.exception()
            if exc is not None:
                return f"failed: {type(exc).__name__}: {exc}"
            legs = getattr(task.result(), "legs", ())
            if not legs:
                return "none: already at target"
            return "; ".join(f"{leg.direction} {leg.requested} -> {leg.status} ({leg.filled:g} filled)" for leg in legs)
        working = [w for w in om.working_orders if w.month.symbol == symbol]
        return "working: " + ", ".join(f"{w.side} {w.qty} {w.month.local_symbol} @ {w.limit:g}" for w in working)

    def cancel_working_orders(self, symbol: str | None = None) -> int:
        """Ask the broker to cancel every order the order manager is working (for ``symbol``)."""
        n = 0
        for w in list(getattr(self.order_manager, "working_orders", [])):
            if w.trade is None or (symbol is not None and w.month.symbol != symbol):
                continue
            try:
                self.broker.cancel_order(w.trade)
                n += 1
            except Exception as exc:  # noqa: BLE001 - reported; the order's own loop retries after a reconnect
                log.warning("runner.cancel_failed", order_ref=w.order_ref, error=str(exc))
        return n

    async def retire_previous(self, symbol: str) -> bool:
        """End an earlier cycle's work on ``symbol`` (the new target replaces it); False if it will not end."""
        prev = self.tickets.get(symbol)
        if prev is None or prev.task.done():
            return True
        if prev.waiting_until is None:
            self.cancel_working_orders(symbol)
        else:
            prev.task.cancel()
        done, _ = await asyncio.wait({prev.task}, timeout=15.0)
        return bool(done)

    async def flatten(self, markets: Iterable[MarketConfig]) -> list[asyncio.Task[Any]]:
        """Cancel every working order, then close each market's position through the gate from the
        open of its current or next trading session. Returns the tasks."""
        self.cancel_working_orders()
        for t in list(self.tickets.values()):
            if t.waiting_until is not None:
                t.task.cancel()
        await self.wait(15.0)
        tasks = []
        for m in markets:
            month = (await self.broker.resolve_contract(m)).active if self.config.wait_for_session else None
            await self.start(m, None, 0, month, liquid=False)
            tasks.append(self.tickets[m.symbol].task)
        return tasks

    def busy(self) -> bool:
        """True while a task does something other than sleep until its session or wait on parked orders."""
        om = self.order_manager
        live = [t for t in self.tickets.values() if not t.task.done()]
        if not live:
            return False
        if not om.idle:
            return True
        working = list(getattr(om, "working_orders", []))
        for t in live:
            if t.waiting_until is not None:
                continue
            mine = [w for w in working if w.month.symbol == t.market]
            if not mine or not all(w.parked.is_set() and not w.changed.is_set() for w in mine):
                return True
        return False

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for every task to end; True when none is left."""
        live = [t.task for t in self.tickets.values() if not t.task.done()]
        if not live:
            return True
        _, pending = await asyncio.wait(live, timeout=timeout_s)
        return not pending

    async def stop(self, wait_s: float) -> list[asyncio.Task[Any]]:
        """A clean stop leaves nothing working at the broker: cancel, wait (bounded), then cancel tasks."""
        live = [t.task for t in self.tickets.values() if not t.task.done()]
        if live:
            self.cancel_working_orders()
            for t in self.tickets.values():
                if t.waiting_until is not None:
                    t.task.cancel()
            _, still = await asyncio.wait(live, timeout=min(wait_s, 5.0)) if wait_s > 0 else (set(), set(live))
            for task in still:
                task.cancel()
            await asyncio.gather(*live, return_exceptions=True)
        return live
