"""Records of the order manager: a live child order's state and what routing achieved."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from hydra_engine.broker.contracts import ContractMonth

TERMINAL = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
ACKED = frozenset({"PreSubmitted", "Submitted", "Filled"})


@dataclass(slots=True)
class WorkingOrder:
    """Mutable state of one live child order (internal to the manager)."""

    order_ref: str
    month: ContractMonth
    side: str
    qty: int
    arrival_mid: float
    arrival_at: dt.datetime
    data_type: str
    predicted_slippage: float
    limit: float
    started_mono: float
    trade: Any = None
    filled: float = 0.0
    notional: float = 0.0
    exec_ids: set[str] = field(default_factory=set)
    status: str = "INTENT"
    broker_status: str = ""
    errors: list[tuple[int, str]] = field(default_factory=list)
    rejected: bool = False
    cancel_sent: bool = False
    cancel_raced: bool = False
    reprices: int = 0
    ack_latency_ms: float | None = None
    """Start of the child order (quote, gate, INTENT commit included) to the broker's ack."""
    sent_mono: float | None = None
    wire_ack_ms: float | None = None
    """placeOrder to the broker's acknowledgement (the round trip alone)."""
    ack_recorded: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    parked: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while the order waits on the clock for its next patience step (the engine is idle)."""
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled)

    @property
    def avg_price(self) -> float | None:
        return self.notional / self.filled if self.filled else None


def settled(wo: WorkingOrder) -> bool:
    """Done at the broker and every execution it reported is journalled."""
    if wo.filled >= wo.qty:
        return True
    if wo.trade is None or wo.cancel_raced:
        return False  # a fill that beat our cancel: wait for its executions (bounded by the caller)
    terminal = wo.broker_status in TERMINAL or wo.rejected
    if not terminal:
        return False
    reported = float(wo.trade.orderStatus.filled or 0.0)
    return wo.filled >= reported


class WorkingOrders:
    """The child orders this process is working, by orderRef.

    One registry handed to the order manager (which adds and removes orders) and to the broker
    reports (which look orders up to apply executions, errors and rebinds), so neither reaches
    into the other."""

    def __init__(self) -> None:
        self._by_ref: dict[str, WorkingOrder] = {}

    def add(self, wo: WorkingOrder) -> None:
        self._by_ref[wo.order_ref] = wo

    def remove(self, order_ref: str) -> None:
        self._by_ref.pop(order_ref, None)

    def get(self, order_ref: str) -> WorkingOrder | None:
        return self._by_ref.get(order_ref)

    def by_order_id(self, order_id: int) -> WorkingOrder | None:
        return next((w for w in self._by_ref.values() if w.trade is not None and w.trade.order.orderId == order_id),
                    None)

    def __contains__(self, order_ref: object) -> bool:
        return order_ref in self._by_ref

    def __len__(self) -> int:
        return len(self._by_ref)

    def all(self, symbol: str | None = None) -> list[WorkingOrder]:
        """A snapshot (of ``symbol``'s orders, when given)."""
        return [w for w in self._by_ref.values() if symbol is None or w.month.symbol == symbol]

    def items(self) -> list[tuple[str, WorkingOrder]]:
        return list(self._by_ref.items())


@dataclass(frozen=True, slots=True)
class ChildResult:
    """How one child order ended."""

    order_ref: str
    status: str
    """FILLED, PARTIAL, CANCELLED, REJECTED, DENIED or UNKNOWN."""
    qty: int
    filled: float
    avg_price: float | None
    reprices: int
    reasons: tuple[str, ...] = ()
    ack_latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class RouteResult:
    """What ``route_order`` achieved: contracts filled of those requested, per child order."""

    symbol: str
    direction: str
    requested: int
    filled: float
    avg_price: float | None
    status: str
    children: tuple[ChildResult, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def order_refs(self) -> tuple[str, ...]:
        return tuple(c.order_ref for c in self.children)


class ClosedTrade:
    """Stand-in for a Trade that ended while the session was down (no object to hold)."""

    def __init__(self, filled: float) -> None:
        self.orderStatus = SimpleNamespace(filled=filled, status="Cancelled")
        # every field of ib_async's Order that the engine reads from a Trade (the ack reads permId)
        self.order = SimpleNamespace(orderId=0, orderRef="", permId=0)

    def isDone(self) -> bool:  # noqa: N802 - mirrors ib_async's Trade
        return True


def side_of(direction: Any) -> str:
    if isinstance(direction, str):
        d = direction.upper()
        if d in ("BUY", "LONG", "B"):
            return "BUY"
        if d in ("SELL", "SHORT", "S"):
            return "SELL"
    elif direction in (1, -1):
        return "BUY" if direction == 1 else "SELL"
    raise ValueError(f"direction={direction!r} must be BUY/SELL (or +1/-1)")
