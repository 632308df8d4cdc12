"""Executions exactly once, and the reconciliation run on every connect and reconnect.

``ExecutionAssembler`` joins each execution with its commission report and hands the pair on
exactly once per ``execId``, whether it arrived live (``execDetailsEvent``) or was recovered after a
reconnect (``reqExecutions``). ``SessionSync`` asks the gateway for every open order and today's
executions, rebinds our working orders to ib_async's fresh ``Trade`` objects (it drops the old ones
on a disconnect) and compares positions with the journal. A report that does not come back means
"unknown", never "flat": the sync is then incomplete and trading waits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog
from ib_async import IB, Fill, Position, Trade

from hydra_engine.broker.records import ExecutionReport, SyncReport

log = structlog.get_logger(__name__)

ExecutionListener = Callable[[ExecutionReport], None]
REMEMBERED = 20_000
"""execIds (and their bases) the assembler remembers: weeks of a daily system's fills, bounded."""
CorrectionListener = Callable[[ExecutionReport, ExecutionReport], None]
"""``(original, correction)``: IB re-sent a fill under a new execId."""


def execution_base(exec_id: str) -> str:
    """IB's execId without its last group (``0001f4e8.57c7d2b4.01.01`` -> ``0001f4e8.57c7d2b4.01``):
    a correction keeps the base and raises the last group. An id without groups is its own base."""
    base, sep, _ = exec_id.rpartition(".")
    return base if sep and base else exec_id


def same_fill(a: ExecutionReport, b: ExecutionReport) -> bool:
    """Two reports of one fill with the same economics (contract, side, quantity, price, order)."""
    return (a.con_id, a.side, a.qty, a.order_ref) == (b.con_id, b.side, b.qty, b.order_ref) and abs(a.price - b.price) < 1e-9


def _utc(t: object) -> dt.datetime:
    if isinstance(t, dt.datetime):
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


def report_from_fill(fill: Fill, *, live: bool, with_commission: bool) -> ExecutionReport:
    """Copy an ib_async ``Fill`` into an immutable ``ExecutionReport``."""
    ex = fill.execution
    c = fill.contract
    cr = fill.commissionReport
    commission = float(cr.commission) if with_commission and cr.execId else None
    last = c.lastTradeDateOrContractMonth or ""
    return ExecutionReport(
        exec_id=ex.execId,
        order_id=int(ex.orderId),
        perm_id=int(ex.permId),
        order_ref=ex.orderRef or "",
        con_id=int(c.conId),
        symbol=c.symbol,
        local_symbol=c.localSymbol,
        contract_month=last[:6],
        side="BUY" if ex.side in ("BOT", "BUY") else "SELL",
        qty=float(ex.shares),
        price=float(ex.price),
        time=_utc(ex.time if ex.time and ex.time.year > 1970 else fill.time),
        commission=commission,
        live=live,
    )


class ExecutionAssembler:
    """Emits one ``ExecutionReport`` per execId once its commission is known (or overdue)."""

    def __init__(self, commission_timeout_s: float = 2.0) -> None:
        self._timeout = commission_timeout_s
        self._pending: dict[str, tuple[Fill, bool, asyncio.TimerHandle | None]] = {}
        self._emitted: dict[str, None] = {}
        """execIds handed on (an insertion-ordered set, the oldest dropped past ``REMEMBERED``: the
        journal's own uniqueness covers anything older, which reqExecutions no longer replays)."""
        self._without_commission: dict[str, None] = {}
        self._listeners: list[ExecutionListener] = []
        self._late: list[Callable[[str, float], None]] = []
        self._by_base: dict[str, ExecutionReport] = {}
        """First report of each execId base (all but the last group): a later id with the same base
        is IB's correction of that fill."""
        self._corrections: list[CorrectionListener] = []
        self._correction_backlog: list[tuple[ExecutionReport, ExecutionReport]] = []
        self._backlog: list[ExecutionReport] = []
        """Reports emitted while nobody listened (a connect before the journal is wired): kept for
        the first listener, so an execution recovered at start-up is never consumed unjournalled."""

    def subscribe(self, listener: ExecutionListener) -> None:
        self._listeners.append(listener)
        backlog, self._backlog = self._backlog, []
        for report in backlog:
            self._deliver(report)

    def subscribe_late_commissions(self, listener: Callable[[str, float], None]) -> None:
        """``(exec_id, commission)`` for a report that came after its execution was emitted."""
        self._late.append(listener)

    def unsubscribe(self, listener: ExecutionListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def seen(self, exec_id: str) -> bool:
        return exec_id in self._emitted or exec_id in self._pending

    def subscribe_corrections(self, listener: CorrectionListener) -> None:
        """``(original, correction)`` for each execution IB re-sent under a new execId (those seen
        before any listener are held for the first one)."""
        self._corrections.append(listener)
        held, self._correction_backlog = self._correction_backlog, []
        for original, correction in held:
            self._tell_correction(original, correction)

    def _tell_correction(self, original: ExecutionReport, correction: ExecutionReport) -> None:
        if not self._corrections:
            self._correction_backlog.append((original, correction))
            return
        for listener in list(self._corrections):
            try:
                listener(original, correction)
            except Exception:  # noqa: BLE001
                log.exception("broker.correction_listener_failed", exec_id=correction.exec_id)

    def offer(self, fill: Fill, *, live: bool) -> bool:
        """Take an execution; returns False when this execId was already taken, or when it is a
        correction of one taken before (IB's new execId for the same fill: handed to the
        correction listeners, never counted as a second fill)."""
        exec_id = fill.execution.execId
        if not exec_id or self.seen(exec_id):
            return False
        original = self._by_base.get(execution_base(exec_id))
        if original is not None and original.exec_id != exec_id:
            self._remember(exec_id)
            correction = report_from_fill(fill, live=live, with_commission=bool(fill.commissionReport.execId))
            same = same_fill(original, correction)
            (log.info if same else log.warning)("broker.execution_corrected", original=original.exec_id,
                                                 correction=exec_id, same_fill=same)
            self._tell_correction(original, correction)
            return False
        if fill.commissionReport.execId:
            self._emit(fill, live, with_commission=True)
            return True
        handle = None
        try:
            loop = asyncio.get_running_loop()
            handle = loop.call_later(self._timeout, self._overdue, exec_id)
        except RuntimeError:
            pass
        self._pending[exec_id] = (fill, live, handle)
        return True

    def commission(self, fill: Fill) -> None:
        """A commission report arrived (ib_async already merged it into ``fill``)."""
        exec_id = fill.execution.execId
        entry = self._pending.pop(exec_id, None)
        if entry is None:
            if exec_id in self._without_commission and fill.commissionReport.execId:
                self._without_commission.pop(exec_id, None)
                for late in list(self._late):
                    late(exec_id, float(fill.commissionReport.commission))
            return
        _, live, handle = entry
        if handle is not None:
            handle.cancel()
        self._emit(fill, live, with_commission=True)

    def flush(self) -> None:
        """Emit every pending execution now (commission unknown), e.g. before a disconnect."""
        for exec_id in list(self._pending):
            self._overdue(exec_id)

    def _overdue(self, exec_id: str) -> None:
        entry = self._pending.pop(exec_id, None)
        if entry is None:
            return
        fill, live, _ = entry
        # ib_async may have merged the report into the fill without an event we saw
        self._emit(fill, live, with_commission=bool(fill.commissionReport.execId))

    def _remember(self, exec_id: str) -> None:
        self._emitted[exec_id] = None
        while len(self._emitted) > REMEMBERED:
            del self._emitted[next(iter(self._emitted))]

    def _emit(self, fill: Fill, live: bool, *, with_commission: bool) -> None:
        report = report_from_fill(fill, live=live, with_commission=with_commission)
        self._remember(report.exec_id)
        self._by_base.setdefault(execution_base(report.exec_id), report)
        while len(self._by_base) > REMEMBERED:
            del self._by_base[next(iter(self._by_base))]
        if report.commission is None:
            self._without_commission[report.exec_id] = None
            while len(self._without_commission) > REMEMBERED:
                del self._without_commission[next(iter(self._without_commission))]
            log.warning("broker.commission_missing", exec_id=report.exec_id, order_ref=report.order_ref)
        if not self._listeners:
            self._backlog.append(report)
            log.info("broker.execution_held", exec_id=report.exec_id, reason="no listener yet")
            return
        self._deliver(report)

    def _deliver(self, report: ExecutionReport) -> None:
        for listener in list(self._listeners):
            try:
                listener(report)
            except Exception:  # noqa: BLE001 - one bad listener must not stop the others
                log.exception("broker.execution_listener_failed", exec_id=report.exec_id)


class PositionBook(Protocol):
    """The journal's view of positions, for the comparison made on every connect."""

    async def expected_positions(self) -> dict[int, float] | None:
        """Signed contracts per conId as our journal explains them; None when unknown."""
        ...

    async def record_unexplained(self, con_id: int, symbol: str, expected: float, actual: float) -> None:
        """Journal a position the broker reports that our fills do not explain."""
        ...

    async def accept_positions(self, actual: dict[int, float]) -> None:
        """The broker's positions become the new baseline after the comparison."""
        ...


RebindHook = Callable[[Sequence[Trade]], Awaitable[None]]
"""Called with every open order as fresh ib_async ``Trade`` objects after each (re)connect."""


class SessionSync:
    """One reconciliation pass over a freshly (re)connected ib_async session."""

    def __init__(
        self,
        ib: IB,
        assembler: ExecutionAssembler,
        *,
        account: str,
        timeout_s: float = 5.0,
        positions_lock: asyncio.Lock | None = None,
    ) -> None:
        """``positions_lock``: the gateway's, shared with ``get_positions`` (ib_async keeps one
        positions request at a time)."""
        self._ib = ib
        self._assembler = assembler
        self._account = account
        self._timeout = timeout_s
        self._positions_lock = positions_lock or asyncio.Lock()

    async def run(
        self,
        *,
        position_book: PositionBook | None = None,
        rebind: RebindHook | None = None,
    ) -> SyncReport:
        errors: list[str] = []
        trades: list[Trade] = []
        fills: list[Fill] = []
        positions: list[Position] | None = None
        try:
            trades = list(await asyncio.wait_for(self._ib.reqAllOpenOrdersAsync(), self._timeout))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"open orders report missing: {type(exc).__name__}: {exc}")
        try:
            fills = list(await asyncio.wait_for(self._ib.reqExecutionsAsync(), self._timeout))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"executions report missing: {type(exc).__name__}: {exc}")
        try:
            async with self._positions_lock:
                positions = list(await asyncio.wait_for(self._ib.reqPositionsAsync(), self._timeout))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"positions report missing: {type(exc).__name__}: {exc}")

        # ib_async merges commission reports into the Fill it stored first, not the copy it returns
        canonical = self._ib.wrapper.fills
        fills = [canonical.get(f.execution.execId, f) for f in fills]
        mine = [f for f in fills if not self._account or f.execution.acctNumber in ("", self._account)]
        await self._await_commissions([f for f in mine if not self._assembler.seen(f.execution.execId)])
        new = sum(1 for f in mine if self._assembler.offer(f, live=False))

        rebound: list[str] = []
        if rebind is not None and not any("open orders" in e for e in errors):
            await rebind(trades)
            rebound = [t.order.orderRef for t in trades if t.order.orderRef]

        unexplained: list[str] = []
        if position_book is not None and positions is not None:
            unexplained = await self._compare_positions(position_book, positions, errors)

        report = SyncReport(
            at=dt.datetime.now(dt.UTC),
            open_orders=len(trades),
            executions_seen=len(mine),
            executions_new=new,
            rebound_orders=tuple(rebound),
            unexplained_positions=tuple(unexplained),
            complete=not errors,
            errors=tuple(errors),
        )
        log.info(
            "broker.sync_done",
            open_orders=report.open_orders,
            executions_seen=report.executions_seen,
            executions_new=report.executions_new,
            rebound=len(rebound),
            unexplained=len(unexplained),
            complete=report.complete,
            errors=list(errors),
        )
        return report

    async def _await_commissions(self, fills: Sequence[Fill]) -> None:
        """Wait (event-driven, bounded) for commission reports of recovered executions."""
        if not fills or all(f.commissionReport.execId for f in fills):
            return
        done = asyncio.Event()

        def check(*_: Any) -> None:
            if all(f.commissionReport.execId for f in fills):
                done.set()

        self._ib.updateEvent += check
        try:
            check()
            await asyncio.wait_for(done.wait(), self._timeout)
        except TimeoutError:
            log.warning("broker.sync_commissions_missing", n=sum(1 for f in fills if not f.commissionReport.execId))
        finally:
            self._ib.updateEvent -= check

    async def _compare_positions(
        self, book: PositionBook, positions: Sequence[Position], errors: list[str]
    ) -> list[str]:
        expected = await book.expected_positions()
        actual: dict[int, tuple[str, float]] = {}
        for p in positions:
            if self._account and p.account not in ("", self._account):
                continue
            if p.contract.secType not in ("FUT", ""):
                continue
            actual[int(p.contract.conId)] = (p.contract.localSymbol or p.contract.symbol, float(p.position))
        out: list[str] = []
        accept = getattr(book, "accept_positions", None)
        if expected is None:  # first connect for this store: the broker's positions are the baseline
            if accept is not None:
                await accept({c: q for c, (_, q) in actual.items()})
            return out
        for con_id in sorted(set(expected) | set(actual)):
            exp = float(expected.get(con_id, 0.0))
            sym, act = actual.get(con_id, (str(con_id), 0.0))
            if abs(exp - act) > 1e-9:
                out.append(f"{sym} (conId {con_id}): journal {exp:g}, broker {act:g}")
                await book.record_unexplained(con_id, sym, exp, act)
                log.warning("broker.position_unexplained", con_id=con_id, symbol=sym, expected=exp, actual=act)
        if accept is not None:
            await accept({c: q for c, (_, q) in actual.items()})
        return out
