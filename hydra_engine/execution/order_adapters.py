"""The order manager's seams to the store, the risk layer and the fill journal.

Kept apart from order_manager.py so the lifecycle reads on its own and each seam is one place to
change: ``StoreAdapter`` maps the manager's outcomes onto the store's order statuses,
``RiskAdapter`` builds ``OrderIntent``/``AccountState`` for ``RiskGate.check`` and predicts
slippage, and ``make_fill_record`` turns an execution into the journal's ``FillRecord``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import structlog

from hydra_engine.broker.contracts import ContractMonth
from hydra_engine.broker.records import ExecutionReport

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

    async def unresolved(self) -> list[OpenRow]:
        rows = await self._orders.open_orders()
        return [OpenRow(r.order_ref, r.status.value if hasattr(r.status, "value") else str(r.status),
                        float(r.quantity), float(r.filled)) for r in rows]

    async def context(self, order_ref: str) -> dict[str, Any]:
        """What the journal needs about an order this process did not send (recovered fills)."""
        rec = await self._orders.get(order_ref) if order_ref else None
        if rec is None:
            return dict(limit=None, arrival_mid=None, predicted=None, data_type="live", arrival_at=None)
        d = rec.detail or {}
        at = d.get("arrival_at")
        return dict(
            limit=rec.limit_price,
            arrival_mid=d.get("arrival_mid"),
            predicted=d.get("predicted_slippage"),
            data_type=d.get("data_type", "live"),
            arrival_at=dt.datetime.fromisoformat(at) if at else rec.created_at,
        )
