"""Futures accounting: IB-style average cost with the multiplier, realized P&L, commissions; and
marking open positions to market between fills for account subscribers (real ib_async clients)."""

from __future__ import annotations

import datetime as dt

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


# ----- marking to market between fills (real ib_async clients) ------------------------------


def _nl(ib) -> float:
    [v] = [v for v in ib.accountValues() if v.tag == "NetLiquidation" and v.currency == "USD"]
    return float(v.value)


def _expected(ex, con_id: int) -> tuple[float, float, float]:
    """(mark, unrealized, net liquidation) from the exchange's own account and quote."""
    acct = ex.account_book.get(ex.accounts[0])
    p = acct.positions[con_id]
    mark = ex.feed.mark(con_id, ex.clock.now())
    unreal = p.qty * p.multiplier * mark - p.qty * p.avg_cost
    return mark, unreal, acct.cash + unreal


async def _hold_cl(ex, ib, until, qty: int = 2):
    from ib_async import Future, MarketOrder

    d = (await ib.reqContractDetailsAsync(Future("CL")))[0]
    c = d.contract
    trade = ib.placeOrder(c, MarketOrder("BUY", qty))
    await until(lambda: trade.orderStatus.status == "Submitted", what="ack")
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=10))
    await until(lambda: trade.isDone() and any(p.position == qty for p in ib.portfolio()), what="fill pushed")
    return c


async def _quiet_client(ex, client_id: int):
    """A real ib_async client that subscribes to no account data at connect."""
    from ib_async import IB
    from ib_async.ib import StartupFetch

    q = IB()
    q.client.MaxRequests = 0
    await q.connectAsync("127.0.0.1", ex.port, clientId=client_id, timeout=5, raiseSyncErrors=True,
                         fetchFields=StartupFetch.POSITIONS | StartupFetch.ORDERS_OPEN)
    return q


async def test_positions_are_marked_between_fills_across_a_close(exchange, ib_client, until) -> None:
    ex = exchange
    ib = await ib_client(client_id=1)
    quiet = await _quiet_client(ex, 2)
    try:
        heard: list = []
        quiet.accountValueEvent += heard.append
        quiet.updatePortfolioEvent += heard.append
        quiet.accountSummaryEvent += heard.append
        await ib.accountSummaryAsync()  # a summary subscription is refreshed too
        c = await _hold_cl(ex, ib, until)
        n_exec = len(ex.book.executions)
        fills = len(ib.fills())
        nl0 = _nl(ib)
        [item0] = [p for p in ib.portfolio() if p.contract.conId == c.conId]
        _, close = ex.feed.session_at("CL", ex.clock.now())
        for target in (ex.clock.now() + dt.timedelta(hours=3), close + dt.timedelta(hours=2)):
            await ex.advance_to(target)  # inside the session, then past its settlement
            mark, unreal, nl = _expected(ex, c.conId)
            await until(lambda nl=nl: abs(_nl(ib) - nl) < 0.006, what=f"NetLiquidation marked at {target}")
            [item] = [p for p in ib.portfolio() if p.contract.conId == c.conId]
            assert item.marketPrice == pytest.approx(mark)
            assert item.unrealizedPNL == pytest.approx(unreal, abs=0.01)
            assert item.marketValue == pytest.approx(2 * 1000 * mark, abs=0.01)
            values = {v.tag: float(v.value) for v in ib.accountValues() if v.currency == "USD" and v.tag != "Currency"}
            assert values["UnrealizedPnL"] == pytest.approx(unreal, abs=0.01)
            assert values["GrossPositionValue"] == 0.0
            assert values["AvailableFunds"] == pytest.approx(nl - values["InitMarginReq"], abs=0.02)
            summary = {v.tag: float(v.value) for v in ib.wrapper.acctSummary.values() if v.currency == "USD"}
            assert summary["NetLiquidation"] == pytest.approx(nl, abs=0.006)
        settle = ex.universe.quote(c.conId, ex.clock.now()).last
        assert mark == settle  # past the close: the settlement price
        assert _nl(ib) != nl0 and item.marketPrice != item0.marketPrice
        assert len(ex.book.executions) == n_exec and len(ib.fills()) == fills  # no new fill did it
        assert heard == [] and quiet.accountValues() == [] and quiet.portfolio() == []
    finally:
        quiet.disconnect()


async def test_a_long_lockstep_jump_marks_once_and_only_on_change(exchange, ib_client, until) -> None:
    ex = exchange
    ib = await ib_client(client_id=1)
    c = await _hold_cl(ex, ib, until)
    seen: list[float] = []
    ib.accountValueEvent += lambda v: seen.append(float(v.value)) if v.tag == "NetLiquidation" else None
    pushed = ex.marker.marks_pushed
    await ex.advance_to(ex.clock.now() + dt.timedelta(days=4))  # crosses several closes
    _, _, nl = _expected(ex, c.conId)
    await until(lambda: abs(_nl(ib) - nl) < 0.006, what="final mark")
    # One mark for the jump: reqAccountUpdates + one reqAccountUpdatesMulti per account (ib_async
    # subscribes both at connect), never one per simulated 3 minutes.
    assert ex.marker.marks_pushed - pushed == 2 and len(seen) == 2
    # Less than 3 simulated minutes later nothing is due; and on the weekend (CL closed, settled
    # price unchanged) nothing changes, so nothing is pushed however long the steps.
    assert ex.feed.session_at("CL", ex.clock.now()) is None
    pushed = ex.marker.marks_pushed
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=1))
    for _ in range(3):
        await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=20))
    assert ex.feed.session_at("CL", ex.clock.now()) is None
    assert ex.marker.marks_pushed == pushed and len(seen) == 2


async def test_background_clock_marks_without_advance_to(make_exchange, sim_universe, until) -> None:
    from ib_async import IB, Future, MarketOrder

    from hydra_engine.sim.clock import SimClock

    ex = await make_exchange(clock=SimClock.fixed_speed(sim_universe.default_clock_start(), 1800.0))
    ib = IB()
    ib.client.MaxRequests = 0
    await ib.connectAsync("127.0.0.1", ex.port, clientId=1, timeout=5, raiseSyncErrors=True)
    try:
        d = (await ib.reqContractDetailsAsync(Future("CL")))[0]
        trade = ib.placeOrder(d.contract, MarketOrder("SELL", 1))
        await until(lambda: trade.isDone() and bool(ib.portfolio()), timeout=10, what="fill")
        nl0, fills = _nl(ib), len(ib.fills())
        await until(lambda: _nl(ib) != nl0, timeout=10, what="a mark from the ticker")
        assert len(ib.fills()) == fills
    finally:
        ib.disconnect()
