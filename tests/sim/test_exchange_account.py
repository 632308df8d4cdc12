"""Futures accounting: IB-style average cost with the multiplier, realized P&L, commissions."""

from __future__ import annotations

import pytest

from hydra_engine.sim.account import COMMISSION_PER_CONTRACT, Account


def test_average_cost_includes_the_multiplier_and_realizes_on_close() -> None:
    a = Account("DU1", 100_000.0)
    a.apply_fill(1, "BUY", 2, 60.00, 1000)
    a.apply_fill(1, "BUY", 1, 63.00, 1000)
    p = a.positions[1]
    assert p.qty == 3 and p.avg_cost == pytest.approx(61_000.0)
    booked = a.apply_fill(1, "SELL", 2, 62.50, 1000)
    assert booked.realized_pnl == pytest.approx(2 * 1500.0) and booked.position_after == 1
    assert p.avg_cost == pytest.approx(61_000.0)  # closing leaves the cost of the rest alone
    assert a.cash == pytest.approx(100_000 + 3000 - 5 * COMMISSION_PER_CONTRACT)


def test_flip_through_zero_and_values_at_marks() -> None:
    a = Account("DU1", 50_000.0)
    a.apply_fill(7, "SELL", 1, 400.0, 50)  # short 1 oats-like contract
    booked = a.apply_fill(7, "BUY", 3, 390.0, 50)  # cover (+500) and go long 2 at 390
    assert booked.realized_pnl == pytest.approx(500.0)
    p = a.positions[7]
    assert p.qty == 2 and p.avg_cost == pytest.approx(390.0 * 50)
    snap = a.snapshot({7: 395.0})
    assert snap.unrealized_pnl == pytest.approx(2 * 5.0 * 50)
    assert snap.futures_notional == pytest.approx(2 * 395.0 * 50)
    assert snap.init_margin == pytest.approx(0.10 * snap.futures_notional)
    assert snap.gross_position_value == 0.0 and snap.as_tags()["GrossPositionValue"] == 0.0  # as IB, futures only
    assert snap.net_liquidation == pytest.approx(snap.total_cash + snap.unrealized_pnl)
    assert snap.available_funds == pytest.approx(snap.net_liquidation - snap.init_margin)
    again = Account.from_dict(a.to_dict())
    assert again.snapshot({7: 395.0}) == snap
