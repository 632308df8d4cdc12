"""``whatIfOrder``: the margin and commission an order would cost, without placing it.

IB answers a what-if order with one OPEN_ORDER whose order state carries the account's initial
margin, maintenance margin and equity with loan value before the order, the change, and after it
(as if it filled at the current price), plus the commission. The exchange uses its own margin
stand-in (``account.INITIAL_MARGIN_RATE`` / ``MAINT_MARGIN_RATE`` of the futures notional) and its
flat commission, so a what-if agrees with the account values the same order produces once filled.
"""

from __future__ import annotations

from collections.abc import Mapping

from .account import COMMISSION_PER_CONTRACT, INITIAL_MARGIN_RATE, MAINT_MARGIN_RATE, Account
from .messages import WhatIfState


def what_if(account: Account, marks: Mapping[int, float], con_id: int, multiplier: float, signed_qty: float,
            price: float) -> WhatIfState:  # fmt: skip
    """The account before and after a fill of ``signed_qty`` of ``con_id`` at ``price``.

    ``marks`` (conId -> price per unit) values the open positions; a position without a mark is
    valued at its average cost, as the account snapshot does."""
    before = account.snapshot(marks)
    commission = round(COMMISSION_PER_CONTRACT * abs(signed_qty), 2)
    notional = 0.0
    held = {p.con_id: p for p in account.open_positions()}
    if con_id not in held:
        notional += abs(signed_qty) * price * multiplier
    for p in held.values():
        mark = marks.get(p.con_id)
        unit = p.avg_cost if mark is None else mark * p.multiplier
        qty = p.qty + (signed_qty if p.con_id == con_id else 0.0)
        notional += abs(qty) * unit
    init_after = round(INITIAL_MARGIN_RATE * notional, 2)
    maint_after = round(MAINT_MARGIN_RATE * notional, 2)
    equity_before = before.net_liquidation
    equity_after = round(equity_before - commission, 2)
    return WhatIfState(
        before.init_margin, before.maint_margin, equity_before,
        round(init_after - before.init_margin, 2), round(maint_after - before.maint_margin, 2),
        round(equity_after - equity_before, 2),
        init_after, maint_after, equity_after, commission, account.currency,
    )  # fmt: skip
