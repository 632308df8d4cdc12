"""What comes back from the broker for the order manager: order status, errors, executions and
reconnects.

Status and error events wake the order's own loop (its ``changed`` event); a 10148 cancel that
lost the race to a fill makes the loop wait for that fill's executions.

Each execution is journalled as it arrives, exactly once by execId (live, or recovered by
``reqExecutions`` after a reconnect or a restart), with the slippage context of its order. On every
(re)connect our working orders are rebound to ib_async's fresh ``Trade`` objects (by orderRef, else
permId), and store rows an earlier process left open are resolved against the broker's open orders
and executions, never by sending again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from hydra_engine.broker.records import ExecutionReport
from hydra_engine.clock import Clock
from hydra_engine.execution.fill_journal import FillRecord
from hydra_engine.execution.order_adapters import (
    JournalPositionBook,
    StoreAdapter,
    make_fill_record,
)
from hydra_engine.execution.order_records import (
    ACKED,
    ClosedTrade,
    WorkingOrder,
    WorkingOrders,
)
from hydra_engine.tasks import log_task_failure

if TYPE_CHECKING:
    from hydra_engine.events import EngineEvent

log = structlog.get_logger(__name__)


class FillSink(Protocol):
    """Where executions are journalled (``FillJournal``): exactly once by execId."""

    async def log_fill(self, rec: FillRecord) -> bool: ...

    async def set_commission(self, exec_id: str, commission: float) -> bool: ...


class EventSink(Protocol):
    """Where engine events go (``EventBus``)."""

    def publish(self, event: EngineEvent) -> None: ...


class Canceller(Protocol):
    """The broker's cancel, for orders an earlier process left working."""

    def cancel_order(self, trade: Any) -> None: ...


class BrokerReports:
    """Order events, execution journalling and reconnect handling for the order manager.

    It owns the execIds seen, the fills per orderRef and the journalling tasks; it shares only the
    ``WorkingOrders`` registry (to apply what the broker reports to the order being worked)."""

    def __init__(
        self, *, broker: Canceller, store: StoreAdapter, journal: FillSink, book: JournalPositionBook,
        working: WorkingOrders, prefix: str, clock: Clock, events: EventSink | None = None,
    ) -> None:
        self._gw = broker
        self._store = store
        self._journal = journal
        self._book = book
        self._working = working
        self._prefix = prefix
        self._clock = clock
        self._events = events
        self._journalled: set[str] = set()
        self._fills_by_ref: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, wo: WorkingOrder, trade: Any) -> None:
        """Follow ``trade``'s status events into ``wo`` (its loop wakes on each)."""
        wo.trade = trade
        wo.broker_status = trade.orderStatus.status

        def on_status(t: Any) -> None:
            if wo.trade is not t:
                return
            wo.broker_status = t.orderStatus.status
            if wo.broker_status in ACKED and not wo.acked.is_set():
                now = time.monotonic()
                wo.ack_latency_ms = (now - wo.started_mono) * 1000.0
                if wo.sent_mono is not None:
                    wo.wire_ack_ms = (now - wo.sent_mono) * 1000.0
                wo.acked.set()
            if wo.broker_status == "Inactive":
                wo.rejected = True
            wo.changed.set()

        trade.statusEvent += on_status
        on_status(trade)

    def on_connection_lost(self) -> None:
        for wo in self._working.all():
            wo.changed.set()

    def on_order_error(self, order_id: int, order_ref: str, code: int, message: str) -> None:
        wo = self._working.get(order_ref) or self._working.by_order_id(order_id)
        if wo is None:
            return
        wo.errors.append((code, message))
        if code == 10148:
            # the cancel lost the race: when the broker says the order is Filled, wait for every
            # execution (ib_async has just marked the trade Cancelled; the fill may still be in flight)
            wo.cancel_raced = "Filled" in message or "filled" in message
            log.info("order.cancel_raced_fill", order_ref=wo.order_ref)
        elif code == 201:
            wo.rejected = True
        wo.changed.set()

    async def rebind(self, trades: Sequence[Any]) -> None:
        """On (re)connect: attach our working orders to ib_async's fresh Trade objects."""
        by_ref = {t.order.orderRef: t for t in trades if t.order.orderRef}
        by_perm = {t.order.permId: t for t in trades if t.order.permId}
        for ref, wo in list(self._working.items()):
            perm = getattr(getattr(wo.trade, "order", None), "permId", 0)
            fresh = by_ref.get(ref) or (by_perm.get(perm) if perm else None)
            if fresh is not None:
                self.bind(wo, fresh)
                log.info("order.rebound", order_ref=ref, status=fresh.orderStatus.status)
            else:
                # not open any more: it filled or ended while we were away
                wo.broker_status = "Filled" if wo.filled >= wo.qty else "Cancelled"
                wo.trade = ClosedTrade(wo.filled)
                wo.cancel_sent = True
            wo.changed.set()
        await self._resolve_orphans(by_ref)

    async def _resolve_orphans(self, open_by_ref: dict[str, Any]) -> None:
        """Store rows left open by an earlier process: resolve by orderRef, never re-send."""
        rows = await self._store.unresolved()
        for row in rows:
            ref = row.order_ref
            if ref in self._working:
                continue
            filled = self._fills_by_ref.get(ref, 0.0)
            trade = open_by_ref.get(ref)
            if trade is not None:
                log.warning("order.orphan_cancelled", order_ref=ref, status=trade.orderStatus.status)
                self._gw.cancel_order(trade)
                status = "CANCELLED" if filled == 0 else "PARTIAL"
                detail = "working order of an earlier session: cancelled on restart"
            elif filled > 0:
                status = "FILLED" if filled >= row.qty else "PARTIAL"
                detail = "resolved from the broker's executions on restart"
            else:
                status = "NOT_SENT" if row.status == "INTENT" else "CANCELLED"
                detail = "not at the broker on restart: never re-sent"
            await self._store.status(ref, status, filled=filled, detail=detail)
            log.info("order.orphan_resolved", order_ref=ref, status=status, filled=filled)

    def on_execution(self, rep: ExecutionReport) -> None:
        """Each execution, exactly once per execId, as it arrives (live or recovered)."""
        if rep.exec_id in self._journalled:
            return
        self._journalled.add(rep.exec_id)
        if not rep.order_ref.startswith(self._prefix + "-"):
            # not an order of ours (manual, another client): the position check on connect flags it
            log.warning("order.foreign_execution", exec_id=rep.exec_id, order_ref=rep.order_ref,
                        symbol=rep.local_symbol, side=rep.side, qty=rep.qty)
            return
        self._book.note_execution(rep)
        self._fills_by_ref[rep.order_ref] = self._fills_by_ref.get(rep.order_ref, 0.0) + rep.qty
        wo = self._working.get(rep.order_ref)
        if wo is not None:
            wo.filled += rep.qty
            wo.notional += rep.qty * rep.price
            wo.exec_ids.add(rep.exec_id)
            wo.changed.set()
        self._spawn(self._journal_fill(rep, wo), f"journal-{rep.exec_id}")

    def on_late_commission(self, exec_id: str, commission: float) -> None:
        self._spawn(self._set_commission(exec_id, commission), f"commission-{exec_id}")

    def fills_of(self, order_ref: str) -> float:
        """Contracts executed for ``order_ref`` as reported to this process."""
        return self._fills_by_ref.get(order_ref, 0.0)

    async def drain(self) -> None:
        """Wait until every execution reported so far is journalled (or failed loudly)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Engine stop: journal what has arrived; the broker keeps the rest for the next start."""
        await self.drain()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_task_failure)

    async def _set_commission(self, exec_id: str, commission: float) -> None:
        try:
            await self._journal.set_commission(exec_id, commission)
        except Exception:  # noqa: BLE001 - logged loudly; the broker still has the report
            log.exception("order.commission_journal_failed", exec_id=exec_id)

    async def _journal_fill(self, rep: ExecutionReport, wo: WorkingOrder | None) -> None:
        try:
            if wo is not None:
                ctx: dict[str, Any] = dict(limit=wo.limit, arrival_mid=wo.arrival_mid, predicted=wo.predicted_slippage,
                           data_type=wo.data_type, arrival_at=wo.arrival_at, contract_month=wo.month.contract_month)
            else:
                ctx = await self._store.context(rep.order_ref)
            record = make_fill_record(rep, **ctx)
        except Exception:  # noqa: BLE001 - logged loudly; the broker still has the execution
            log.exception("order.fill_record_failed", exec_id=rep.exec_id, order_ref=rep.order_ref)
            return
        for attempt, pause_s in enumerate((0.1, 0.5, 2.0, None), start=1):
            try:
                new = await self._journal.log_fill(record)
                break
            except Exception:  # noqa: BLE001 - retried, then logged loudly (never silently lost)
                if pause_s is None:
                    log.exception("order.fill_journal_failed", exec_id=rep.exec_id, order_ref=rep.order_ref,
                                  attempts=attempt, record=repr(record))
                    return
                log.warning("order.fill_journal_retry", exec_id=rep.exec_id, attempt=attempt)
                await asyncio.sleep(pause_s)
        log.info("order.fill_journalled", exec_id=rep.exec_id, order_ref=rep.order_ref, qty=rep.qty,
                 price=rep.price, new=new)
        if wo is None and new:
            await self._late_fill_status(rep.order_ref)
        if new and self._events is not None:
            from hydra_engine.events import FillRecorded

            self._events.publish(FillRecorded(
                at=self._clock.now(), exec_id=rep.exec_id, symbol=rep.symbol, direction=rep.side,
                quantity=rep.qty, fill_price=rep.price, order_ref=rep.order_ref,
                contract_month=record.contract_month, predicted_slippage=record.predicted_slippage,
                actual_slippage=record.actual_slippage, commission=record.commission,
            ))

    async def _late_fill_status(self, order_ref: str) -> None:
        """A fill of an order no longer worked here (it raced a cancel, or an earlier process sent
        it): once its executions cover the order, the row becomes FILLED."""
        row = await self._store.row(order_ref)
        if row is not None and self._fills_by_ref.get(order_ref, 0.0) >= row.qty:
            await self._store.status(order_ref, "FILLED", filled=self._fills_by_ref[order_ref],
                                     detail="filled after the order left the manager")
