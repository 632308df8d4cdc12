"""Order intents and their lifecycle, keyed by HYDRA's ``orderRef`` (and IB's ``permId`` once known).

An order row is written with status INTENT *before* the order is sent. After a crash, an INTENT
row with no broker trace means "decided but never sent"; one the broker knows (by orderRef) was
sent. Status moves forward only: a late or duplicated broker report never turns a FILLED order
back into ACKED, and the filled quantity never decreases. A fill racing a cancel (CANCELLED then
FILLED) is accepted, as IB reports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Iterable, Mapping

import aiosqlite
import structlog

from hydra_engine.clock import Clock, from_iso, to_iso
from hydra_engine.store.lock import WriteGate
from hydra_engine.store.ops_journal import dumps

log = structlog.get_logger(__name__)


class OrderStatus(StrEnum):
    INTENT = "INTENT"
    """Decided and written, not yet handed to the broker."""
    SENT = "SENT"
    """placeOrder called; no acknowledgement yet."""
    ACKED = "ACKED"
    """The broker acknowledged it (Submitted/PreSubmitted); may be partly filled."""
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    """Cancelled (possibly after a partial fill: see ``filled``)."""
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"
    """The broker's view is unknown (after a disconnect): trading waits until it is known."""


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})
OPEN_STATUSES = frozenset({OrderStatus.INTENT, OrderStatus.SENT, OrderStatus.ACKED, OrderStatus.UNKNOWN})

_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.INTENT: frozenset(OrderStatus) - {OrderStatus.INTENT},
    OrderStatus.SENT: frozenset(OrderStatus) - {OrderStatus.INTENT, OrderStatus.SENT},
    OrderStatus.ACKED: frozenset({OrderStatus.ACKED, *TERMINAL_STATUSES, OrderStatus.UNKNOWN}),
    OrderStatus.UNKNOWN: frozenset(OrderStatus) - {OrderStatus.INTENT},
    OrderStatus.CANCELLED: frozenset({OrderStatus.CANCELLED, OrderStatus.FILLED}),
    OrderStatus.FILLED: frozenset({OrderStatus.FILLED}),
    OrderStatus.REJECTED: frozenset({OrderStatus.REJECTED}),
}


def can_move(old: OrderStatus, new: OrderStatus) -> bool:
    """Whether a report of ``new`` may replace ``old`` (stale reports are ignored, not applied)."""
    return new in _ALLOWED[old]


class DuplicateOrderRefError(ValueError):
    """An intent with this orderRef already exists."""


class UnknownOrderError(LookupError):
    """No order with this orderRef."""


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One order as journalled. Quantities in contracts, prices in quote units."""

    order_ref: str
    market: str
    symbol: str
    action: str
    quantity: float
    order_type: str
    limit_price: float | None
    status: OrderStatus
    filled: float
    avg_fill_price: float | None
    perm_id: int | None
    order_id: int | None
    con_id: int | None
    local_symbol: str
    contract_month: str
    trading_date: date | None
    purpose: str
    parent_ref: str | None
    error_code: int | None
    message: str
    detail: Mapping[str, Any]
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime

    @property
    def remaining(self) -> float:
        return max(self.quantity - self.filled, 0.0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class OrderEvent:
    at: datetime
    status: str
    filled: float | None
    message: str


_COLS = (
    "order_ref, market, symbol, action, quantity, order_type, limit_price, status, filled, avg_fill_price, "
    "perm_id, order_id, con_id, local_symbol, contract_month, trading_date, purpose, parent_ref, error_code, "
    "message, detail, created_at, sent_at, updated_at"
)


def _record(r: Any) -> OrderRecord:
    return OrderRecord(
        order_ref=r[0], market=r[1], symbol=r[2], action=r[3], quantity=r[4], order_type=r[5],
        limit_price=r[6], status=OrderStatus(r[7]), filled=r[8], avg_fill_price=r[9], perm_id=r[10],
        order_id=r[11], con_id=r[12], local_symbol=r[13], contract_month=r[14],
        trading_date=date.fromisoformat(r[15]) if r[15] else None, purpose=r[16], parent_ref=r[17],
        error_code=r[18], message=r[19], detail=json.loads(r[20]), created_at=from_iso(r[21]),
        sent_at=from_iso(r[22]) if r[22] else None, updated_at=from_iso(r[23]),
    )


class OrderRepo:
    """Repository over ``orders`` and ``order_events``."""

    def __init__(self, conn: aiosqlite.Connection, gate: WriteGate, clock: Clock) -> None:
        self._conn = conn
        self._gate = gate
        self._clock = clock

    async def record_intent(
        self,
        order_ref: str,
        *,
        market: str,
        symbol: str,
        action: str,
        quantity: float,
        order_type: str = "LMT",
        limit_price: float | None = None,
        con_id: int | None = None,
        local_symbol: str = "",
        contract_month: str = "",
        trading_date: date | None = None,
        purpose: str = "",
        parent_ref: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> OrderRecord:
        """Write the INTENT row (committed) before the order is sent."""
        if not order_ref:
            raise ValueError("order_ref must not be empty")
        if action not in ("BUY", "SELL"):
            raise ValueError(f"action {action!r}: must be 'BUY' or 'SELL'")
        if not quantity > 0:
            raise ValueError(f"quantity {quantity}: must be above 0 contracts")
        now = to_iso(self._clock.now())
        try:
            async with self._gate.transaction() as conn:
                await conn.execute(
                    "INSERT INTO orders (order_ref, market, symbol, action, quantity, order_type, limit_price, "
                    "status, con_id, local_symbol, contract_month, trading_date, purpose, parent_ref, detail, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'INTENT', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        order_ref, market, symbol, action, float(quantity), order_type, limit_price, con_id,
                        local_symbol, contract_month, trading_date.isoformat() if trading_date else None,
                        purpose, parent_ref, dumps(detail), now, now,
                    ),
                )
                await conn.execute(
                    "INSERT INTO order_events (order_ref, at, status, filled, message) VALUES (?, ?, 'INTENT', 0, ?)",
                    (order_ref, now, purpose),
                )
        except aiosqlite.IntegrityError as exc:
            if "orders.order_ref" in str(exc) or "UNIQUE" in str(exc):
                raise DuplicateOrderRefError(f"orderRef {order_ref!r} is already journalled") from None
            raise
        rec = await self.get(order_ref)
        assert rec is not None
        return rec

    async def mark_sent(self, order_ref: str, order_id: int | None = None) -> OrderRecord:
        """Record that placeOrder was called (INTENT -> SENT; a faster broker report is kept)."""
        now = to_iso(self._clock.now())
        async with self._gate.transaction() as conn:
            rec = await self._get(conn, order_ref)
            if rec is None:
                raise UnknownOrderError(f"no order with orderRef {order_ref!r}")
            status = OrderStatus.SENT if rec.status == OrderStatus.INTENT else rec.status
            await conn.execute(
                "UPDATE orders SET status = ?, sent_at = COALESCE(sent_at, ?), order_id = COALESCE(?, order_id), "
                "updated_at = ? WHERE order_ref = ?",
                (status.value, now, order_id, now, order_ref),
            )
            if status != rec.status:
                await conn.execute(
                    "INSERT INTO order_events (order_ref, at, status, filled, message) VALUES (?, ?, ?, ?, '')",
                    (order_ref, now, status.value, rec.filled),
                )
        out = await self.get(order_ref)
        assert out is not None
        return out

    async def update_status(
        self,
        order_ref: str,
        status: OrderStatus | str,
        *,
        perm_id: int | None = None,
        order_id: int | None = None,
        filled: float | None = None,
        avg_fill_price: float | None = None,
        error_code: int | None = None,
        message: str = "",
    ) -> bool:
        """Apply a broker report. Returns False (and changes nothing) for a stale/backward report."""
        new = OrderStatus(status)
        now = to_iso(self._clock.now())
        async with self._gate.transaction() as conn:
            rec = await self._get(conn, order_ref)
            if rec is None:
                raise UnknownOrderError(f"no order with orderRef {order_ref!r}")
            if not can_move(rec.status, new):
                log.info("order_report_ignored", order_ref=order_ref, current=rec.status.value, reported=new.value)
                return False
            new_filled = rec.filled if filled is None else max(rec.filled, float(filled))
            await conn.execute(
                "UPDATE orders SET status = ?, filled = ?, avg_fill_price = COALESCE(?, avg_fill_price), "
                "perm_id = COALESCE(?, perm_id), order_id = COALESCE(?, order_id), "
                "error_code = COALESCE(?, error_code), message = CASE WHEN ? = '' THEN message ELSE ? END, "
                "updated_at = ? WHERE order_ref = ?",
                (new.value, new_filled, avg_fill_price, perm_id, order_id, error_code, message, message, now,
                 order_ref),
            )
            if new != rec.status or new_filled != rec.filled or message:
                await conn.execute(
                    "INSERT INTO order_events (order_ref, at, status, filled, message) VALUES (?, ?, ?, ?, ?)",
                    (order_ref, now, new.value, new_filled, message),
                )
        return True

    async def set_perm_id(self, order_ref: str, perm_id: int) -> None:
        async with self._gate.transaction() as conn:
            cur = await conn.execute(
                "UPDATE orders SET perm_id = ?, updated_at = ? WHERE order_ref = ?",
                (perm_id, to_iso(self._clock.now()), order_ref),
            )
            n = cur.rowcount
            await cur.close()
        if n == 0:
            raise UnknownOrderError(f"no order with orderRef {order_ref!r}")

    async def _get(self, conn: aiosqlite.Connection, order_ref: str) -> OrderRecord | None:
        async with conn.execute(f"SELECT {_COLS} FROM orders WHERE order_ref = ?", (order_ref,)) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def get(self, order_ref: str) -> OrderRecord | None:
        return await self._get(self._conn, order_ref)

    async def by_perm_id(self, perm_id: int) -> OrderRecord | None:
        async with self._conn.execute(f"SELECT {_COLS} FROM orders WHERE perm_id = ?", (perm_id,)) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def _select(self, where: str, args: Iterable[Any], suffix: str = "ORDER BY created_at, order_ref") -> list[OrderRecord]:
        async with self._conn.execute(f"SELECT {_COLS} FROM orders WHERE {where} {suffix}", tuple(args)) as cur:
            return [_record(r) for r in await cur.fetchall()]

    async def open_orders(self, market: str | None = None) -> list[OrderRecord]:
        """INTENT, SENT, ACKED and UNKNOWN orders (what reconciliation must account for)."""
        marks = ",".join("?" * len(OPEN_STATUSES))
        args: list[Any] = [s.value for s in OPEN_STATUSES]
        where = f"status IN ({marks})"
        if market is not None:
            where += " AND market = ?"
            args.append(market)
        return await self._select(where, args)

    async def unsent_intents(self) -> list[OrderRecord]:
        """Orders written but never sent: after a crash, check the broker for their orderRef."""
        return await self._select("status = 'INTENT'", ())

    async def for_trading_date(self, trading_date: date, market: str | None = None) -> list[OrderRecord]:
        args: list[Any] = [trading_date.isoformat()]
        where = "trading_date = ?"
        if market is not None:
            where += " AND market = ?"
            args.append(market)
        return await self._select(where, args)

    async def recent(self, limit: int = 50) -> list[OrderRecord]:
        """Newest first."""
        return await self._select("1=1", (), f"ORDER BY created_at DESC, order_ref DESC LIMIT {int(limit)}")

    async def events(self, order_ref: str) -> list[OrderEvent]:
        async with self._conn.execute(
            "SELECT at, status, filled, message FROM order_events WHERE order_ref = ? ORDER BY id", (order_ref,)
        ) as cur:
            return [OrderEvent(from_iso(a), s, f, m) for a, s, f, m in await cur.fetchall()]
