"""Issue 2, item 4 end to end: a decision is never filled at the prices of a bar the client has
already seen, and historical-data pacing is counted in simulated time (real ib_async client)."""

from __future__ import annotations

import datetime as dt

import pytest
from ib_async import Future, MarketOrder

from hydra_engine.sim.datafeed import Pacer

pytestmark = pytest.mark.timeout(60)
T0 = dt.datetime(2018, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


async def _front(ib):
    return (await ib.reqContractDetailsAsync(Future("CL")))[0].contract


async def test_order_after_a_close_fills_in_the_next_session_not_at_the_seen_bar(exchange, ib_client, until) -> None:
    ib = await ib_client()
    c = await _front(ib)
    feed = exchange.feed
    today = feed.trade_date("CL", exchange.clock.now())
    _, close = feed.bounds("CL", today)
    await exchange.advance_to(close + dt.timedelta(minutes=1))  # the decision point: after the close
    seen = await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)
    assert seen[-1].date == today  # the client has seen today's completed bar
    decided_at = exchange.clock.now()
    trade = ib.placeOrder(c, MarketOrder("BUY", 1, orderRef="after-close"))
    await until(lambda: trade.orderStatus.status == "PreSubmitted", what="ack outside the session")
    assert trade.fills == []
    nxt_open, nxt_close = feed.current_or_next_session("CL", decided_at)
    assert nxt_open > decided_at
    await exchange.advance_to(nxt_close + dt.timedelta(minutes=1))
    await until(lambda: trade.isDone(), what="fill")
    [fill] = trade.fills
    assert fill.execution.time >= nxt_open > decided_at  # no fill at a price from the bar already seen
    nxt_day = feed.trade_date("CL", fill.execution.time)
    assert nxt_day > seen[-1].date
    bars = await ib.reqHistoricalDataAsync(c, "", "2 D", "1 day", "TRADES", True)
    assert bars[-1].date == nxt_day
    tick = 0.01
    # the fill comes from the next session's path (plus spread and impact), which the seen bar did not hold
    assert bars[-1].low - 20 * tick <= fill.execution.price <= bars[-1].high + 20 * tick


async def test_order_inside_a_session_fills_after_the_quote_the_client_saw(exchange, ib_client, until) -> None:
    ib = await ib_client()
    c = await _front(ib)
    await exchange.advance_to(exchange.clock.now() + dt.timedelta(minutes=30))
    [tk] = await ib.reqTickersAsync(c)
    decided_at = exchange.clock.now()
    assert tk.last > 0
    trade = ib.placeOrder(c, MarketOrder("SELL", 1))
    await until(lambda: trade.orderStatus.status == "Submitted", what="ack")
    await exchange.advance_to(decided_at + dt.timedelta(minutes=5))
    await until(lambda: trade.isDone(), what="fill")
    assert all(f.execution.time > decided_at for f in trade.fills)


async def test_pacing_window_is_simulated_seconds_not_real_ones(exchange, ib_client) -> None:
    """Lock-step: real time passes freely, yet only stepping the clock past 15 s lifts the limit."""
    ib = await ib_client()
    c = await _front(ib)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
    assert len(await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)) == 5
    start = exchange.clock.now()
    await exchange.advance_to(start + dt.timedelta(seconds=14))
    assert list(await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)) == []
    assert codes == [162]
    await exchange.advance_to(start + dt.timedelta(seconds=29, milliseconds=500))  # 15.5 s after the refused one
    assert len(await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)) == 5
    assert codes == [162]


def test_pacer_rules_in_simulated_time() -> None:
    p = Pacer()
    s = dt.timedelta(seconds=1)
    assert p.check(T0, ("a",), 1) is None
    assert "identical" in (p.check(T0 + 14 * s, ("a",), 1) or "")
    assert p.check(T0 + 30 * s, ("a",), 1) is None
    # six distinct requests for one contract inside 2 s are fine, the seventh is not
    base = T0 + 100 * s
    assert [p.check(base + k * dt.timedelta(milliseconds=100), ("b", k), 2) for k in range(6)] == [None] * 6
    assert "6 requests" in (p.check(base + dt.timedelta(milliseconds=700), ("b", 6), 2) or "")
    assert p.check(base + 3 * s, ("b", 7), 2) is None
    # sixty within ten minutes, then the window slides
    q = Pacer()
    for k in range(60):
        assert q.check(T0 + k * 5 * s, ("c", k), 100 + k) is None
    assert "60 requests" in (q.check(T0 + 300 * s, ("c", 60), 999) or "")
    assert q.check(T0 + 611 * s, ("c", 61), 998) is None
