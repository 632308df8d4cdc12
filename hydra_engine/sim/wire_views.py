"""How the exchange's own records look on the wire: contract blocks (cached per conId), order and
execution views, ORDER_STATUS fields. Shared by the order delivery and the client sessions."""

from __future__ import annotations

from . import messages as M
from .datafeed import wire_contract
from .market_types import MarketUniverse
from .orders import Execution, WorkingOrder


class ContractWire:
    """The contract block of each conId, built once (None for a conId the universe does not know)."""

    def __init__(self, universe: MarketUniverse) -> None:
        self._universe = universe
        self._cache: dict[int, M.WireContract | None] = {}

    def get(self, con_id: int) -> M.WireContract | None:
        if con_id not in self._cache:
            m = self._universe.month(con_id)
            spec = self._universe.spec(m.symbol) if m else None
            self._cache[con_id] = wire_contract(spec, m) if (m and spec) else None
        return self._cache[con_id]


def order_view(o: WorkingOrder, what_if: M.WhatIfState | None = None) -> M.OrderView:
    """OPEN_ORDER's view of ``o`` (with the what-if state when answering a what-if order)."""
    return M.OrderView(o.order_id, o.client_id, o.perm_id, o.action, o.total_qty, o.order_type,
                       o.lmt_price, o.tif, o.account, o.order_ref, o.status, o.outside_rth,
                       o.good_till_date if o.tif == "GTD" else "", o.parent_id, o.oca_group, o.aux_price,
                       o.oca_type if o.oca_group else 0, what_if)  # fmt: skip


def exec_view(e: Execution, c: M.WireContract) -> M.ExecutionView:
    return M.ExecutionView(e.exec_id, e.order_id, e.client_id, e.perm_id, e.time, e.account, c.exchange,
                           e.side, e.qty, e.price, e.cum_qty, e.avg_price, e.order_ref)  # fmt: skip


def status_fields(o: WorkingOrder) -> M.Fields:
    """ORDER_STATUS message fields."""
    return M.order_status(o.order_id, o.status, o.filled, o.remaining, round(o.avg_fill_price, 10),
                          o.perm_id, o.last_fill_price, o.client_id, o.parent_id)  # fmt: skip
