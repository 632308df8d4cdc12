"""OrderManager: every order's life from the risk gate to the journal, driven by broker events.

``route_order`` slices a large order against ADV, and works each child as a limit order that
starts at the mid and walks to and through the touch on the patience schedule (read from the
engine Clock), then is cancelled. Every send and every reprice passes ``RiskGate.check``; the
gateway accepts nothing but the resulting ``Approval``. The orderRef is stored (status INTENT)
before anything is sent, so a crash between the two is resolved on restart against the broker's
open orders and executions, never by sending again. Each execution is journalled as it arrives,
exactly once by execId. ``move_to_target`` orders only the difference to the target, and rolls a
position held in an expiring month as a gated two-leg roll.

The manager holds its parts and calls them through their public methods: ``BrokerReports``
(status, errors, executions, reconnects; the journal), ``OrderWaiter`` and ``BusyTracker`` (the
waits, and what lock-step drivers wait on) and the ``WorkingOrders`` registry they share.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from hydra_engine.broker.contracts import ContractMonth, MarketLike
from hydra_engine.broker.errors import BrokerError, NotConnected
from hydra_engine.clock import Clock
from hydra_engine.execution.broker_reports import BrokerReports, EventSink, FillSink
from hydra_engine.execution.order_adapters import (
    JournalPositionBook,
    RiskAdapter,
    RiskInputs,
    StoreAdapter,
)
from hydra_engine.execution.order_records import (
    TERMINAL,
    ChildResult,
    RouteResult,
    WorkingOrder,
    WorkingOrders,
    settled,
    side_of,
)
from hydra_engine.execution.order_waiting import BusyTracker, OrderWaiter
from hydra_engine.execution.patience import PatienceSchedule, limit_price
from hydra_engine.execution.sessions import next_session_open
from hydra_engine.execution.slicing import slice_sizes

if TYPE_CHECKING:
    from hydra_engine.broker.gateway import BrokerGateway
    from hydra_engine.execution.targets import MoveResult
    from hydra_engine.risk.gate import RiskGate
    from hydra_engine.store.database import Store
    from hydra_engine.store.equity import EquityRepo

log = structlog.get_logger(__name__)

SESSION_SETTLE_S = 60.0
"""Seconds after a session opens before an order that waited for it is re-anchored: let the
opening quote form (the embedded exchange, like a real open, shows the old book for a moment)."""


class OrderManager:
    """Routes orders through the risk gate to the broker and journals every execution."""

    def __init__(
        self,
        gateway: BrokerGateway,
        risk_gate: RiskGate,
        store: Store,
        fill_journal: FillSink,
        clock: Clock,
        *,
        patience: PatienceSchedule | None = None,
        max_adv_fraction: float = 0.01,
        settle_timeout_s: float = 10.0,
        ref_prefix: str = "HY",
        events: EventSink | None = None,
        wait_for_open: bool = True,
    ) -> None:
        self._gw = gateway
        self._wait_for_open = wait_for_open
        self._risk = RiskAdapter(risk_gate)
        self._store = StoreAdapter(store)
        self._clock = clock
        self.patience = patience or PatienceSchedule.default()
        self._max_adv_fraction = max_adv_fraction
        self._settle_timeout = settle_timeout_s
        self._prefix = ref_prefix
        self._events = events
        self._working = WorkingOrders()
        self._busy = BusyTracker()
        self._waiter = OrderWaiter(gateway, clock, self._busy)
        book = JournalPositionBook(store)
        self._reports = BrokerReports(
            broker=gateway, store=self._store, journal=fill_journal, book=book, working=self._working,
            prefix=ref_prefix, clock=clock, events=events,
        )
        gateway.set_position_book(book)
        gateway.subscribe_executions(self._reports.on_execution)
        gateway.subscribe_late_commissions(self._reports.on_late_commission)
        gateway.subscribe_order_errors(self._reports.on_order_error)
        gateway.subscribe_connection(self._reports.on_connection_lost)
        gateway.add_rebind_hook(self._reports.rebind)

    # ----------------------------------------------------------------- public API

    async def route_order(
        self,
        contract: ContractMonth,
        direction: str,
        n_contracts: int,
        adv: float,
        mid_price: float,
        daily_pnl: float,
        peak_equity: float,
        current_equity: float,
        position_value: float,
        trade_loss: float,
        current_position: float = 0.0,
        *,
        reducing: bool = False,
        purpose: str = "",
        trading_date: dt.date | None = None,
        daily_sigma: float | None = None,
        stale_pnl: bool = False,
        max_adv_fraction: float | None = None,
        gross_exposure: float | None = None,
    ) -> RouteResult:
        """Work ``n_contracts`` in ``direction`` (BUY/SELL) through the gate, slice by slice.

        ``position_value`` is the signed notional after the order (account currency) and
        ``trade_loss`` the order's loss on a k-sigma adverse day; ``daily_sigma`` (price units,
        for the slippage prediction) is read from recent bars when not given. Child orders are at
        most ``max_adv_fraction`` of ADV (the market's setting; the manager's default otherwise).
        ``gross_exposure`` is the account-wide gross notional before the order (all markets), for
        the gate's gross limit; unknown, the order's own notional stands in.
        """
        side = side_of(direction)
        if n_contracts < 0 or int(n_contracts) != n_contracts:
            raise ValueError(f"n_contracts={n_contracts} must be a whole number >= 0")
        sizes = slice_sizes(int(n_contracts), adv, max_adv_fraction or self._max_adv_fraction)
        children: list[ChildResult] = []
        position = float(current_position)
        self._busy.enter()
        try:
            if daily_sigma is None and sizes:
                daily_sigma = await self._daily_sigma(contract)
            for size in sizes:
                risk = RiskInputs(
                    adv=adv, mid_price=mid_price, daily_pnl=daily_pnl, peak_equity=peak_equity,
                    current_equity=current_equity, position_value=position_value,
                    trade_loss=trade_loss * size / max(1, n_contracts), current_position=position,
                    sigma=daily_sigma or 0.0, trading_date=trading_date, stale=stale_pnl,
                    gross_exposure=gross_exposure,
                )
                child = await self._work_child(
                    contract, side, size, risk, reducing=reducing, purpose=purpose, trading_date=trading_date
                )
                children.append(child)
                position += child.filled if side == "BUY" else -child.filled
                if child.status != "FILLED":
                    break
        finally:
            self._busy.leave()
        return self._summarise(contract, side, int(n_contracts), children)

    @staticmethod
    def _summarise(contract: ContractMonth, side: str, n_contracts: int, children: list[ChildResult]) -> RouteResult:
        filled = sum(c.filled for c in children)
        notional = sum((c.avg_price or 0.0) * c.filled for c in children)
        if not children:
            status = "NOTHING"
        elif filled >= n_contracts:
            status = "FILLED"
        elif filled > 0:
            status = "PARTIAL"
        else:
            status = children[-1].status
        reasons = tuple(r for c in children for r in c.reasons)
        return RouteResult(
            symbol=contract.symbol, direction=side, requested=int(n_contracts), filled=filled,
            avg_price=notional / filled if filled else None, status=status, children=tuple(children),
            reasons=reasons,
        )

    async def move_to_target(
        self, market: MarketLike, target: int, *, equity: EquityRepo | None = None,
        trading_date: dt.date | None = None,
    ) -> MoveResult:
        """Order only ``target - current`` in the active month; roll an expiring month first."""
        from hydra_engine.execution.targets import move_to_target

        return await move_to_target(self, market, target, equity=equity, trading_date=trading_date)

    def cancel_working(self, symbol: str | None = None, reason: str = "operator") -> int:
        """Cancel every working order (of ``symbol``); each settles through its own event loop.

        Cancels never pass the risk gate (HALTED still allows them). Returns how many were sent.
        """
        n = 0
        for wo in self._working.all(symbol):
            if not wo.cancel_sent and wo.trade is not None and not wo.trade.isDone():
                self._cancel(wo, reason)
                n += 1
        return n

    @property
    def gateway(self) -> BrokerGateway:
        return self._gw

    async def close(self) -> None:
        """Engine stop: each part stops on its own; executions already reported are journalled."""
        self._waiter.stop()
        self._busy.close()
        await self._reports.close()

    @property
    def working_orders(self) -> list[WorkingOrder]:
        return self._working.all()

    @property
    def idle(self) -> bool:
        """True when no child order is doing anything but waiting on the clock."""
        return self._busy.idle

    async def wait_idle(self, timeout_s: float = 10.0, *, min_working: int = 0, symbol: str | None = None) -> None:
        """Lock-step drivers: return once every child order waits on the clock (or none runs),
        with at least ``min_working`` orders working (of ``symbol``, when given)."""
        await self._busy.wait_idle(timeout_s, lambda: len(self._working.all(symbol)) >= min_working)

    # ----------------------------------------------------------------- one child order

    async def _work_child(
        self, month: ContractMonth, side: str, qty: int, risk: RiskInputs, *, reducing: bool,
        purpose: str, trading_date: dt.date | None,
    ) -> ChildResult:
        started = time.monotonic()
        quote = await self._waiter.arrival_quote(month)
        risk = replace(risk, mid_price=quote.mid)  # the price band is measured around the arrival mid
        tick = month.min_tick or quote.min_tick or 0.0
        step0 = self.patience.steps[0]
        limit = limit_price(step0, side=side, bid=quote.bid, ask=quote.ask, tick=tick)
        order_ref = self._new_ref(month)
        predicted = self._risk.predicted_slippage(
            qty=qty, adv=risk.adv, spread=quote.spread, mid=quote.mid, sigma=risk.sigma
        )
        decision = self._risk.check(
            order_ref=order_ref, month=month, side=side, qty=qty, limit=limit, risk=risk, reducing=reducing,
        )
        if not self._risk.approved(decision):
            reasons = self._risk.reasons(decision)
            log.warning("order.denied", order_ref=order_ref, symbol=month.local_symbol, reasons=list(reasons))
            await self._store.denied(
                order_ref, month, side, qty, limit, quote.mid, self._now(), reasons, purpose=purpose,
                trading_date=trading_date,
            )
            self._publish(order_ref, "DENIED", month, side, qty, 0.0, limit, detail="; ".join(reasons))
            return ChildResult(order_ref, "DENIED", qty, 0.0, None, 0, reasons)
        wo = WorkingOrder(
            order_ref=order_ref, month=month, side=side, qty=qty, arrival_mid=quote.mid,
            arrival_at=self._now(), data_type=quote.data_type, predicted_slippage=predicted,
            limit=limit, started_mono=started,
        )
        # registered first, so a reconnect's orphan resolution never mistakes it for a dead intent
        self._working.add(wo)
        # the intent is durable before anything leaves the process
        try:
            await self._store.intent(
                order_ref, month, side, qty, limit, quote.mid, wo.arrival_at, purpose=purpose,
                trading_date=trading_date, extra={"predicted_slippage": predicted, "data_type": quote.data_type,
                                                  "trading_state": decision.trading_state.value, "reduces": bool(reducing)},
            )
        except BaseException:
            self._working.remove(order_ref)  # not journalled: nothing is sent
            raise
        self._publish(order_ref, "INTENT", month, side, qty, 0.0, limit)
        try:
            wo.sent_mono = time.monotonic()
            trade = self._gw.place_order(
                decision, month, action=side, quantity=qty, limit_price=limit, order_ref=order_ref
            )
        except BrokerError as exc:
            self._working.remove(order_ref)
            await self._store.status(order_ref, "FAILED", detail=str(exc))
            self._publish(order_ref, "FAILED", month, side, qty, 0.0, limit, detail=str(exc))
            return ChildResult(order_ref, "REJECTED", qty, 0.0, None, 0, (str(exc),))
        self._reports.bind(wo, trade)
        wo.status = "SENT"
        await self._store.sent(order_ref, trade.order.orderId)
        self._publish(order_ref, "SENT", month, side, qty, 0.0, limit)
        try:
            await self._work(wo, risk, reducing)
        finally:
            self._working.remove(order_ref)
        return await self._finish(wo)

    async def _work(self, wo: WorkingOrder, risk: RiskInputs, reducing: bool) -> None:
        """Event-driven loop: wake on order events or at the next patience deadline."""
        if not await self._await_session(wo, risk, reducing):
            return
        start = self._now()
        while True:
            if wo.acked.is_set() and not wo.ack_recorded and wo.trade is not None:
                wo.ack_recorded = True
                await self._store.status(wo.order_ref, "ACKED", perm_id=int(wo.trade.order.permId or 0))
                self._publish(wo.order_ref, "ACKED", wo.month, wo.side, wo.qty, wo.filled, wo.limit)
            if settled(wo):
                return
            if not self._gw.is_connected or not self._gw.state_known:
                if not await self._wait_reconnect(wo):
                    return
                continue
            if wo.cancel_sent or wo.rejected:
                # waiting for the broker to confirm (and for any fill that raced the cancel)
                if not await self._waiter.changed(wo, self._settle_timeout):
                    if not self._gw.is_connected:
                        if not await self._wait_reconnect(wo):
                            return
                        continue
                    log.warning("order.settle_timeout", order_ref=wo.order_ref, status=wo.broker_status)
                    return
                continue
            elapsed = (self._now() - start).total_seconds()
            deadline = start + dt.timedelta(seconds=self.patience.next_change_s(elapsed))
            woke = await self._waiter.changed_or_time(wo, deadline)
            if woke:
                continue
            if not self._gw.is_connected or not self._gw.state_known:
                if not await self._wait_reconnect(wo):
                    return
                continue
            elapsed = (self._now() - start).total_seconds()
            if elapsed >= self.patience.cancel_after_s:
                self._cancel(wo, "patience schedule ended")
                continue
            await self._reprice(wo, self.patience.step_at(elapsed), risk, reducing)

    async def _await_session(self, wo: WorkingOrder, risk: RiskInputs, reducing: bool) -> bool:
        """Hold the schedule until the market opens; then re-anchor at that session's mid.

        The arrival mid (and so the predicted and actual slippage) is the first quote of the session
        the order is worked in; the wait is a clock sleep, so lock-step steps straight to the open.
        False when the order settled meanwhile (e.g. filled at the open) or the gateway stopped.
        """
        opens = next_session_open(getattr(wo.month, "details", None), self._now()) if self._wait_for_open else None
        if opens is None:
            return True
        anchor = opens + dt.timedelta(seconds=SESSION_SETTLE_S)
        log.info("order.waiting_for_open", order_ref=wo.order_ref, opens=opens.isoformat())
        while self._now() < anchor:
            if settled(wo):
                return False
            if not self._gw.is_connected or not self._gw.state_known:
                if not await self._wait_reconnect(wo):
                    return False
                continue
            await self._waiter.changed_or_time(wo, anchor)
        if settled(wo):
            return False
        try:
            quote = await self._gw.get_quote(wo.month)
        except BrokerError as exc:
            log.warning("order.open_quote_failed", order_ref=wo.order_ref, error=str(exc))
            return True
        wo.arrival_mid, wo.arrival_at, wo.data_type = quote.mid, self._now(), quote.data_type
        wo.predicted_slippage = self._risk.predicted_slippage(
            qty=int(wo.remaining), adv=risk.adv, spread=quote.spread, mid=quote.mid, sigma=risk.sigma
        )
        await self._reprice(wo, 0, risk, reducing)
        return True

    async def _reprice(self, wo: WorkingOrder, step_idx: int, risk: RiskInputs, reducing: bool) -> None:
        step = self.patience.steps[step_idx]
        try:
            quote = await self._gw.get_quote(wo.month)
            bid, ask = quote.bid, quote.ask
        except BrokerError as exc:
            log.warning("order.reprice_quote_failed", order_ref=wo.order_ref, error=str(exc))
            return
        new_limit = limit_price(step, side=wo.side, bid=bid, ask=ask, tick=wo.month.min_tick or 0.0)
        if abs(new_limit - wo.limit) < 1e-12 or wo.remaining <= 0:
            return
        decision = self._risk.check(
            order_ref=wo.order_ref, month=wo.month, side=wo.side, qty=int(wo.remaining), limit=new_limit,
            risk=replace(risk, mid_price=quote.mid,
                         current_position=risk.current_position + (wo.filled if wo.side == "BUY" else -wo.filled)),
            reducing=reducing, is_reprice=True,
        )
        if not self._risk.approved(decision):
            reasons = self._risk.reasons(decision)
            log.warning("order.reprice_denied", order_ref=wo.order_ref, reasons=list(reasons))
            self._cancel(wo, "reprice denied: " + "; ".join(reasons))
            return
        if wo.trade is None or wo.trade.isDone():
            return
        try:
            self._gw.place_order(
                decision, wo.month, action=wo.side, quantity=wo.qty, limit_price=new_limit,
                order_ref=wo.order_ref, replace=wo.trade,
            )
        except (BrokerError, AssertionError) as exc:
            log.warning("order.reprice_failed", order_ref=wo.order_ref, error=str(exc))
            return
        wo.limit = new_limit
        wo.reprices += 1
        log.info("order.repriced", order_ref=wo.order_ref, step=step_idx, limit=new_limit, remaining=wo.remaining)
        await self._store.status(wo.order_ref, "WORKING", detail=f"repriced to {new_limit} (patience step {step_idx})")

    def _cancel(self, wo: WorkingOrder, why: str) -> None:
        if wo.cancel_sent or wo.trade is None:
            return
        wo.cancel_sent = True
        log.info("order.cancel", order_ref=wo.order_ref, reason=why, filled=wo.filled, qty=wo.qty)
        try:
            self._gw.cancel_order(wo.trade)
        except NotConnected:
            wo.cancel_sent = False  # retried after the reconnect

    async def _wait_reconnect(self, wo: WorkingOrder) -> bool:
        """Wait out a lost session for a working order, then send again a cancel that was in
        flight; False when the gateway stopped (the order is resolved on the next start)."""
        if not await self._waiter.broker_ready(wo.order_ref):
            return False
        if wo.cancel_sent and wo.trade is not None and not wo.trade.isDone():
            wo.cancel_sent = False
            self._cancel(wo, "cancel re-sent after reconnect")
        return True

    async def _finish(self, wo: WorkingOrder) -> ChildResult:
        if wo.filled >= wo.qty:
            status = "FILLED"
        elif not (wo.rejected or wo.broker_status in TERMINAL):
            status = "UNKNOWN"  # the broker's last word is not final (stopped, or no confirmation)
        elif wo.rejected and wo.filled == 0:
            status = "REJECTED"
        elif wo.filled > 0:
            status = "PARTIAL"
        else:
            status = "CANCELLED"
        reasons = tuple(f"IB {c}: {m}" for c, m in wo.errors)
        wo.status = status
        await self._reports.drain()
        await self._store.status(
            wo.order_ref, status, filled=wo.filled, avg_price=wo.avg_price, detail="; ".join(reasons),
            perm_id=int(getattr(wo.trade.order, "permId", 0) or 0) if wo.trade is not None else None,
            error_code=wo.errors[-1][0] if wo.errors else None,
        )
        self._publish(wo.order_ref, status, wo.month, wo.side, wo.qty, wo.filled, wo.limit, detail="; ".join(reasons))
        log.info(
            "order.done", order_ref=wo.order_ref, status=status, filled=wo.filled, qty=wo.qty,
            avg_price=wo.avg_price, reprices=wo.reprices, cancel_raced=wo.cancel_raced,
        )
        return ChildResult(wo.order_ref, status, wo.qty, wo.filled, wo.avg_price, wo.reprices, reasons, wo.ack_latency_ms)

    # ----------------------------------------------------------------- helpers

    def _now(self) -> dt.datetime:
        return self._clock.now()

    async def _daily_sigma(self, month: ContractMonth) -> float:
        from hydra_engine.execution.targets import market_stats

        try:
            return market_stats(await self._gw.get_daily_bars(month, lookback_days=45)).sigma
        except BrokerError as exc:
            log.warning("order.sigma_unavailable", symbol=month.local_symbol, error=str(exc))
            return 0.0

    def _new_ref(self, month: ContractMonth) -> str:
        return f"{self._prefix}-{month.symbol}-{self._now():%Y%m%d}-{uuid.uuid4().hex[:10]}"

    def _publish(self, ref: str, status: str, month: ContractMonth, side: str, qty: float, filled: float,
                 limit: float | None, detail: str = "") -> None:
        if self._events is None:
            return
        from hydra_engine.events import OrderUpdated

        self._events.publish(OrderUpdated(
            at=self._now(), order_ref=ref, status=status, symbol=month.local_symbol, action=side,
            quantity=float(qty), filled=float(filled), limit_price=limit, detail=detail,
        ))
