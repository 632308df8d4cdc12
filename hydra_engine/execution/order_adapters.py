"""The order manager's seams to the store, the risk layer and the fill journal.

Kept apart from order_manager.py so the lifecycle reads on its own and each seam is one place to
change: ``StoreAdapter`` maps the manager's outcomes onto the store's order statuses,
``RiskAdapter`` builds ``OrderIntent``/``AccountState`` for ``RiskGate.check`` and predicts
slippage, and ``make_fill_record`` turns an execution into the journal's ``FillRecord``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, cast

import structlog

from hydra_engine.broker.contracts import ContractMonth
from hydra_engine.broker.records import ExecutionReport
from hydra_engine.execution.fill_journal import DataType, FillRecord
from hydra_engine.risk.intents import AccountState, Approval, Denial, OrderIntent

if TYPE_CHECKING:
    from hydra_engine.risk.gate import RiskGate

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OpenRow:
    """An order row the store still holds open (resolved on (re)connect)."""

    order_ref: str
    status: str
    qty: float
    filled: float


class StoreAdapter:
    """Order rows in the store: INTENT before sending, then forward-only status changes."""

    def __init__(self, store: Any) -> None:
        self._orders = getattr(store, "orders", store)

    async def intent(
        self, order_ref: str, month: ContractMonth, side: str, qty: int, limit: float, arrival_mid: float,
        at: dt.datetime, *, purpose: str = "", parent_ref: str | None = None, trading_date: dt.date | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        await self._orders.record_intent(
            order_ref, market=month.symbol, symbol=month.symbol, action=side, quantity=float(qty),
            order_type="LMT", limit_price=limit, con_id=month.con_id, local_symbol=month.local_symbol,
            contract_month=month.contract_month, trading_date=trading_date, purpose=purpose,
            parent_ref=parent_ref,
            detail={"arrival_mid": arrival_mid, "arrival_at": at.isoformat(), **(extra or {})},
        )

    async def denied(
        self, order_ref: str, month: ContractMonth, side: str, qty: int, limit: float, arrival_mid: float,
        at: dt.datetime, reasons: Sequence[str], *, purpose: str = "", trading_date: dt.date | None = None,
    ) -> None:
        """A gate denial is journalled as an intent that was REJECTED before sending."""
        await self.intent(order_ref, month, side, qty, limit, arrival_mid, at, purpose=purpose,
                          trading_date=trading_date, extra={"denied": list(reasons)})
        await self._orders.update_status(order_ref, "REJECTED", message="risk gate: " + "; ".join(reasons))

    async def sent(self, order_ref: str, order_id: int | None) -> None:
        await self._orders.mark_sent(order_ref, order_id)

    async def status(
        self, order_ref: str, status: str, *, filled: float | None = None, avg_price: float | None = None,
        perm_id: int | None = None, error_code: int | None = None, detail: str = "",
    ) -> None:
        """Map the manager's outcome to the store's statuses (PARTIAL is CANCELLED with a fill)."""
        mapped = {
            "FILLED": "FILLED", "PARTIAL": "CANCELLED", "CANCELLED": "CANCELLED", "REJECTED": "REJECTED",
            "FAILED": "REJECTED", "NOT_SENT": "CANCELLED", "UNKNOWN": "UNKNOWN", "ACKED": "ACKED",
            "WORKING": "ACKED", "SENT": "SENT",
        }[status]
        try:
            await self._orders.update_status(
                order_ref, mapped, perm_id=perm_id or None, filled=filled, avg_fill_price=avg_price,
                error_code=error_code, message=detail,
            )
        except Exception:  # noqa: BLE001 - the broker's truth stands; the journal gap is logged loudly
            log.exception("order.store_update_failed", order_ref=order_ref, status=status)

    async def row(self, order_ref: str) -> OpenRow | None:
        rec = await self._orders.get(order_ref) if order_ref else None
        if rec is None:
            return None
        return OpenRow(rec.order_ref, getattr(rec.status, "value", str(rec.status)), float(rec.quantity),
                       float(rec.filled))

    async def unresolved(self) -> list[OpenRow]:
        rows = await self._orders.open_orders()
        return [OpenRow(r.order_ref, r.status.value if hasattr(r.status, "value") else str(r.status),
                        float(r.quantity), float(r.filled)) for r in rows]

    async def context(self, order_ref: str) -> dict[str, Any]:
        """What the journal needs about an order this process did not send (recovered fills)."""
        rec = await self._orders.get(order_ref) if order_ref else None
        if rec is None:
            return dict(limit=None, arrival_mid=None, predicted=None, data_type="live", arrival_at=None,
                        contract_month=None)
        d = rec.detail or {}
        at = d.get("arrival_at")
        return dict(
            contract_month=rec.contract_month or None,
            limit=rec.limit_price,
            arrival_mid=d.get("arrival_mid"),
            predicted=d.get("predicted_slippage"),
            data_type=d.get("data_type", "live"),
            arrival_at=dt.datetime.fromisoformat(at) if at else rec.created_at,
        )


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """What the gate needs besides the order itself, fixed when the order starts (account currency
    unless noted); a reprice or a child slice derives its own with ``dataclasses.replace``."""

    adv: float
    """Average daily volume, contracts."""
    mid_price: float
    """Mid the price band is measured around (the arrival mid, then each reprice's)."""
    daily_pnl: float
    peak_equity: float
    current_equity: float
    position_value: float
    """Signed notional of this market after the order."""
    trade_loss: float
    """Loss of the order on a k-sigma day (the caller's figure; the gate prefers ``sigma``)."""
    current_position: float
    """Signed contracts held before this order (or child)."""
    sigma: float
    """Daily sigma in price units (0 when unknown)."""
    trading_date: dt.date | None = None
    """Trading date of the order's session (daily caps, breaker days)."""
    stale: bool = False
    gross_exposure: float | None = None
    """Account-wide gross notional before the order (every market); None: unknown."""


class RiskAdapter:
    """Builds the gate's ``OrderIntent``/``AccountState`` and asks ``RiskGate.check``."""

    def __init__(self, gate: RiskGate) -> None:
        self._gate = gate

    def check(
        self, *, order_ref: str, month: ContractMonth, side: str, qty: int, limit: float,
        risk: RiskInputs, reducing: bool, is_reprice: bool = False,
    ) -> Approval | Denial:
        intent = OrderIntent(
            market=month.symbol, con_id=month.con_id, local_symbol=month.local_symbol,
            direction="BUY" if side == "BUY" else "SELL",
            qty=int(qty), limit_price=float(limit), mid_price=float(risk.mid_price), order_ref=order_ref,
            is_reprice=is_reprice, reduces_position=reducing, position_value=float(risk.position_value),
            trade_loss=float(risk.trade_loss), adv=float(risk.adv), trading_date=risk.trading_date,
            # one-sigma loss of this child: the gate applies its k_sigma (execution.k_sigma) to it
            sigma_loss=float(risk.sigma) * (month.multiplier or 1.0) * int(qty),
        )
        state = AccountState(
            daily_pnl=float(risk.daily_pnl), current_equity=float(risk.current_equity),
            peak_equity=float(risk.peak_equity),
            # the gate's account-wide figure: gross notional of every market before the order
            position_value=float(risk.position_value if risk.gross_exposure is None else risk.gross_exposure),
            current_position=float(risk.current_position), stale=risk.stale, trading_date=risk.trading_date,
        )
        return self._gate.check(intent, state)

    @staticmethod
    def approved(decision: Approval | Denial) -> TypeGuard[Approval]:
        return isinstance(decision, Approval)

    @staticmethod
    def reasons(decision: Approval | Denial) -> tuple[str, ...]:
        return tuple(str(r) for r in getattr(decision, "reasons", ()) or ("denied",))

    @staticmethod
    def predicted_slippage(*, qty: int, adv: float, spread: float, mid: float, sigma: float) -> float:
        """Predicted cost per contract in price units (positive is a cost), from the risk layer."""
        from hydra_engine.risk.slippage import estimate_slippage

        try:
            est = estimate_slippage(spread=spread, daily_sigma=sigma, qty=qty, adv=adv, mid_price=mid)
        except (TypeError, ValueError) as exc:
            log.warning("order.slippage_estimate_failed", error=str(exc))
            return float("nan")
        return float(est.price)


MONTH_CODES = "FGHJKMNQUVXZ"
"""Futures month codes, January to December (CLQ8: Q is August)."""


def month_of_local_symbol(local_symbol: str, last_trade_month: str) -> str | None:
    """``YYYYMM`` the local symbol names (``CLQ8`` with a last trade in 201807 -> ``201808``).

    The year digit(s) are read against the last-trade year: the named month is never before the
    month the contract stops trading in. None when the symbol does not end in a month code."""
    sym = (local_symbol or "").strip()
    digits = len(sym) - len(sym.rstrip("0123456789"))
    if not 1 <= digits <= 2 or len(sym) <= digits or sym[-digits - 1] not in MONTH_CODES:
        return None
    if len(last_trade_month) < 4 or not last_trade_month[:4].isdigit():
        return None
    month = MONTH_CODES.index(sym[-digits - 1]) + 1
    lt_year = int(last_trade_month[:4])
    base = 10 ** digits
    year = lt_year - lt_year % base + int(sym[-digits:])
    while year < lt_year:
        year += base
    return f"{year:04d}{month:02d}"


def order_contract_month(rep: ExecutionReport, named: str | None) -> str:
    """The contract month a fill belongs to: the month the order named (its ``ContractMonth``),
    else the month the local symbol names; the execution's own field is the last-trade date's
    month (CLQ8 trades out in July), used only when neither is known."""
    if named:
        return named[:6]
    return month_of_local_symbol(rep.local_symbol, rep.contract_month) or rep.contract_month


def make_fill_record(
    rep: ExecutionReport, *, limit: float | None, arrival_mid: float | None, predicted: float | None,
    data_type: str, arrival_at: dt.datetime | None, contract_month: str | None = None,
) -> FillRecord:
    """The journal's ``FillRecord`` for one execution; actual slippage is the signed cost vs the
    arrival mid (positive is a cost: paid above the mid on a buy, sold below it on a sell).
    ``contract_month`` is the month the order named (``ContractMonth.contract_month``)."""
    from hydra_engine.risk.slippage import actual_slippage

    actual = actual_slippage(rep.side, rep.price, arrival_mid) if arrival_mid is not None else None
    latency = (rep.time - arrival_at).total_seconds() * 1000.0 if arrival_at is not None else None
    return FillRecord(
        fill_time=rep.time, symbol=rep.symbol, contract_month=order_contract_month(rep, contract_month),
        direction=rep.side,
        qty=rep.qty, limit_price=limit, arrival_mid=arrival_mid, fill_price=rep.price,
        predicted_slippage=predicted, actual_slippage=actual, latency_ms=latency, exec_id=rep.exec_id,
        order_ref=rep.order_ref, perm_id=rep.perm_id, commission=rep.commission,
        data_type=cast(DataType, data_type),  # FillRecord validates it
    )


class JournalPositionBook:
    """Positions our journal explains: the last reconciled broker snapshot plus every execution
    seen since (by execId). Both are persisted (the executions as they arrive), so a restart
    compares against everything the last run knew, and only a real mismatch is unexplained."""

    def __init__(self, store: Any, keep_exec_ids: int = 2000) -> None:
        from hydra_engine.store.kv import StateKey

        self._store = store
        self._key = StateKey("broker_positions", dict, None)
        self._seen: dict[str, tuple[int, float]] = {}
        self._keep = keep_exec_ids
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def note_execution(self, rep: ExecutionReport) -> None:
        self._seen[rep.exec_id] = (rep.con_id, rep.qty if rep.side == "BUY" else -rep.qty)
        try:
            task = asyncio.get_running_loop().create_task(self._persist(rep.exec_id), name=f"position-{rep.exec_id}")
        except RuntimeError:  # no loop (a unit test): memory only
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _persist(self, exec_id: str) -> None:
        """Add one execution to the snapshot's ``since`` list on disk (a restart forgets memory)."""
        kv = getattr(self._store, "kv", None)
        if kv is None:
            return
        try:
            async with self._lock:
                snap = await kv.get(self._key)
                if snap is None or exec_id in snap.get("exec_ids", []) or exec_id in snap.get("since", {}):
                    return  # no baseline yet (the first connect takes the broker's), or already counted
                con_id, signed = self._seen[exec_id]
                await kv.set(self._key, {**snap, "since": {**snap.get("since", {}), exec_id: [con_id, signed]}})
        except Exception:  # noqa: BLE001 - the next connect's comparison shows what is missing
            log.exception("order.position_note_failed", exec_id=exec_id)

    async def flush(self) -> None:
        """Wait for executions noted so far to be on disk."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def expected_positions(self) -> dict[int, float] | None:
        kv = getattr(self._store, "kv", None)
        if kv is None:
            return None
        await self.flush()
        snap = await kv.get(self._key)
        if snap is None:
            return None
        out = {int(k): float(v) for k, v in snap.get("positions", {}).items()}
        counted = set(snap.get("exec_ids", []))
        since = {e: (int(c), float(q)) for e, (c, q) in snap.get("since", {}).items()}
        for exec_id, (con_id, signed) in {**since, **self._seen}.items():
            if exec_id not in counted:
                out[con_id] = out.get(con_id, 0.0) + signed
        return {k: v for k, v in out.items() if abs(v) > 1e-9}

    async def record_unexplained(self, con_id: int, symbol: str, expected: float, actual: float) -> None:
        ops = getattr(self._store, "ops", None)
        if ops is not None:
            await ops.position_change(symbol, expected, actual, detail={"con_id": con_id})

    async def accept_positions(self, actual: dict[int, float]) -> None:
        kv = getattr(self._store, "kv", None)
        if kv is None:
            return
        await self.flush()
        async with self._lock:
            snap = await kv.get(self._key) or {}
            seen = list(dict.fromkeys([*snap.get("since", {}), *self._seen]))
            prior = [i for i in snap.get("exec_ids", []) if i not in set(seen)]
            await kv.set(self._key, {
                "positions": {str(k): v for k, v in actual.items() if abs(v) > 1e-9},
                "exec_ids": (prior + seen)[-self._keep:],
                "since": {},
            })
