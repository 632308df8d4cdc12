"""whatIfOrder (margins and commission, nothing placed), reqPnL / reqPnLSingle streams, and
reqPositions after fills, with the real ib_async client at server versions 157 and 178 (and IB's
ibapi for reqPositions)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import pytest
from ib_async import Future, MarketOrder
from order_paths import IbapiClient, session_of

pytestmark = pytest.mark.timeout(60)
M = dt.timedelta(minutes=1)
ACCT = "DU1234567"
START_CASH = 1_000_000.0


async def front(ib, symbol: str = "CL"):
    [d, *_] = await ib.reqContractDetailsAsync(Future(symbol))
    return d.contract


async def buy(ex, ib, until, c, qty: int, action: str = "BUY"):
    trade = ib.placeOrder(c, MarketOrder(action, qty))
    await until(lambda: trade.orderStatus.status in ("Submitted", "PreSubmitted"), what="ack")
    await ex.advance_to(ex.clock.now() + 5 * M)
    await until(trade.isDone, what="fill")
    return trade


@pytest.mark.parametrize("version", [157, 178])
async def test_what_if_reports_margin_and_commission_and_places_nothing(make_exchange, ib_client, until,
                                                                        version: int) -> None:  # fmt: skip
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    mark = ex.feed.mark(c.conId, ex.clock.now())
    state = await asyncio.wait_for(ib.whatIfOrderAsync(c, MarketOrder("BUY", 2)), 2)
    notional = 2 * mark * 1000
    assert float(state.initMarginBefore) == 0 and float(state.equityWithLoanBefore) == START_CASH
    assert float(state.initMarginChange) == pytest.approx(0.10 * notional, abs=0.01)
    assert float(state.maintMarginChange) == pytest.approx(0.08 * notional, abs=0.01)
    assert float(state.initMarginAfter) == pytest.approx(0.10 * notional, abs=0.01)
    assert state.commission == 4.5 and state.commissionCurrency == "USD"
    assert float(state.equityWithLoanChange) == -4.5
    await ex.advance_to(ex.clock.now() + 10 * M)  # time passes: still nothing was placed
    assert ex.open_orders() == [] and ex.positions() == {} and ex.book.executions == []
    assert ib.openTrades() == [] and await ib.reqPositionsAsync() == []
    # with a position, the what-if of closing it frees the margin it holds
    await buy(ex, ib, until, c, 2)
    held = ex.account_values()["InitMarginReq"]
    close = await asyncio.wait_for(ib.whatIfOrderAsync(c, MarketOrder("SELL", 2)), 2)
    assert float(close.initMarginBefore) == pytest.approx(held, abs=0.01)
    assert float(close.initMarginAfter) == 0 and float(close.initMarginChange) == pytest.approx(-held, abs=0.01)
    assert ex.positions()[c.conId].qty == 2
    # a what-if IB would refuse ends with the refusal on its id (no order left behind)
    refused = await asyncio.wait_for(ib.whatIfOrderAsync(c, MarketOrder("BUY", 501)), 2)
    assert not refused and [o.order_id for o in ex.open_orders()] == []


@pytest.mark.parametrize("version", [157, 178])
async def test_pnl_streams_follow_fills_and_the_clock(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    seen: dict[int, int] = {}
    for name in ("pnl", "pnlSingle"):  # count every P&L message the decoder hands over, per reqId
        original = getattr(ib.wrapper, name)

        def counting(req_id, *args, _original=original):
            seen[req_id] = seen.get(req_id, 0) + 1
            _original(req_id, *args)

        setattr(ib.wrapper, name, counting)
    pnl = ib.reqPnL(ACCT)
    single = ib.reqPnLSingle(ACCT, "", c.conId)
    await until(lambda: pnl.dailyPnL == 0.0 and single.position == 0, what="first figures")
    await buy(ex, ib, until, c, 2)

    def agrees() -> bool:
        values = ex.account_values()
        mark = ex.feed.mark(c.conId, ex.clock.now())
        return (pnl.dailyPnL == pytest.approx(values["NetLiquidation"] - START_CASH, abs=0.01)
                and pnl.unrealizedPnL == pytest.approx(values["UnrealizedPnL"], abs=0.01)
                and single.position == 2 and single.value == pytest.approx(2 * mark * 1000, abs=0.01))  # fmt: skip

    await until(agrees, what="P&L after the fill")
    assert pnl.realizedPnL == -4.5 and single.realizedPnL == -4.5  # the day's commissions
    before = pnl.dailyPnL
    await ex.advance_to(ex.clock.now() + 45 * M)
    await until(lambda: agrees() and pnl.dailyPnL != before, what="P&L as the clock moves")
    pnl_id = ib.wrapper.pnlKey2ReqId[(ACCT, "")]
    single_id = ib.wrapper.pnlSingleKey2ReqId[(ACCT, "", c.conId)]
    ib.cancelPnL(ACCT)
    await ib.reqCurrentTimeAsync()
    counted = seen[pnl_id]
    singles = seen[single_id]
    await ex.advance_to(ex.clock.now() + 45 * M)
    await until(lambda: seen[single_id] > singles, what="single still streaming")
    assert seen[pnl_id] == counted  # cancelled: nothing more
    ib.cancelPnLSingle(ACCT, "", c.conId)
    await ib.reqCurrentTimeAsync()
    singles = seen[single_id]
    await ex.advance_to(ex.clock.now() + 45 * M)
    await ib.reqCurrentTimeAsync()
    assert seen[single_id] == singles
    assert not any(s.pnl for s in ex.registry.started())


async def test_daily_pnl_resets_at_the_session_close(make_exchange, ib_client, until) -> None:
    """The next trade date's daily P&L of a held position runs from the previous close."""
    ex = await make_exchange()
    ib = await ib_client(ex=ex)
    c = await front(ib)
    await buy(ex, ib, until, c, 1)
    s = session_of(ex, "CL", c.conId)
    await ex.advance_to(s.close + 3 * dt.timedelta(hours=1))  # into the next session
    single = ib.reqPnLSingle(ACCT, "", c.conId)
    pnl = ib.reqPnL(ACCT)
    [bar] = ex.universe.daily_bars(c.conId, s.day, 1)
    mark = ex.feed.mark(c.conId, ex.clock.now())
    await until(lambda: not math.isnan(pnl.dailyPnL) and single.position == 1, what="figures")
    assert single.dailyPnL == pytest.approx((mark - bar.close) * 1000, abs=0.01)
    assert pnl.dailyPnL == single.dailyPnL and pnl.realizedPnL == 0.0
    avg = ex.positions()[c.conId].avg_cost
    assert single.unrealizedPnL == pytest.approx(mark * 1000 - avg, abs=0.01)


@pytest.mark.parametrize("version", [157, 178])
async def test_req_positions_reports_what_fills_left(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    other = await ib_client(client_id=2, ex=ex)
    c = await front(ib)
    z = await front(ib, "ZO")
    await buy(ex, ib, until, c, 3)
    await buy(ex, other, until, z, 2, "SELL")
    want = {(c.conId, 3.0), (z.conId, -2.0)}
    for client in (ib, other):
        got = await asyncio.wait_for(client.reqPositionsAsync(), 2)
        assert {(p.contract.conId, p.position) for p in got} == want
        assert {(p.contract.conId, p.position) for p in client.positions()} == want
    await buy(ex, ib, until, c, 3, "SELL")  # flat again in CL
    got = await asyncio.wait_for(ib.reqPositionsAsync(), 2)
    assert [(p.contract.conId, p.position) for p in got] == [(z.conId, -2.0)]
    app = IbapiClient()
    await asyncio.to_thread(app.start, ex.port, 22)
    try:
        await until(lambda: app.rec.next_id is not None, what="ibapi connected")
        app.reqPositions()
        await until(app.rec.positions_done.is_set, what="ibapi positions")
        assert app.rec.positions == [(z.conId, -2.0)]
    finally:
        await asyncio.to_thread(app.stop)
