"""Faults the first suite left unexercised on the wire: system notices 1100/1102/2103-2106, a
delayed fill, time-triggered drops, and rate-driven faults (real ib_async client)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from ib_async import Future, LimitOrder, MarketOrder

pytestmark = pytest.mark.timeout(60)
UTC = dt.timezone.utc


async def _front(ib):
    return (await ib.reqContractDetailsAsync(Future("CL")))[0].contract


async def test_connectivity_and_farm_notices_reach_the_client(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="notice@order=1:1100;notice@fill=1:1102;"
                                    "notice@t=2018-01-02T12:10:2103;notice@t=2018-01-02T12:11:2104;"
                                    "notice@t=2018-01-02T12:12:2105;notice@t=2018-01-02T12:13:2106")  # fmt: skip
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    got: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: got.append((req_id, code, msg))
    ticker = ib.reqMktData(c)
    await until(lambda: ticker.bid > 0, what="first quote")
    trade = ib.placeOrder(c, MarketOrder("BUY", 1))
    await until(lambda: [g[1] for g in got] == [1100], what="1100 on the first order")
    await ex.advance_to(dt.datetime(2018, 1, 2, 12, 20, tzinfo=UTC))
    await until(lambda: trade.isDone() and len(got) == 6, what="fill, 1102 and the farm notices")
    assert sorted(g[1] for g in got) == [1100, 1102, 2103, 2104, 2105, 2106]
    assert [g[1] for g in got if g[1] > 2000] == [2103, 2104, 2105, 2106]  # in time order
    assert all(g[0] == -1 for g in got)  # system notices carry no request id
    assert "broken" in dict((g[1], g[2]) for g in got)[2103]
    # 1102 is "data maintained": the subscription keeps streaming
    session = ex.registry.started()[0]
    assert session.mkt, "1102 must not drop market-data subscriptions"


async def test_1101_drops_market_data_subscriptions(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="notice@t=2018-01-02T12:05:1101")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    ticker = ib.reqMktData(c)
    await until(lambda: ticker.bid > 0, what="first quote")
    ib.reqRealTimeBars(c, 5, "TRADES", False)
    session = ex.registry.started()[0]
    await until(lambda: any(session.data.streams.kinds.values()), what="a real-time bar stream")
    assert len(session.mkt) == 1
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
    await ex.advance_to(dt.datetime(2018, 1, 2, 12, 6, tzinfo=UTC))
    await until(lambda: codes == [1101], what="1101")
    assert session.mkt == {}  # data lost: the client must resubscribe, as with IB
    assert not any(session.data.streams.kinds.values())  # streams too (bars, ticks, depth)


async def test_delayed_fill_is_booked_at_once_but_delivered_late(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="delay_fill@fill=1:s=0.4")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    trade = ib.placeOrder(c, MarketOrder("BUY", 1, orderRef="late"))
    await until(lambda: trade.orderStatus.status == "Submitted")
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=5))
    t0 = time.perf_counter()
    assert ex.positions()[c.conId].qty == 1  # the exchange booked it
    assert trade.fills == []  # the client has not heard yet
    await until(lambda: trade.isDone(), what="late fill")
    assert time.perf_counter() - t0 >= 0.3
    assert [f.execution.orderRef for f in trade.fills] == ["late"]


async def test_drop_at_a_simulated_time_closes_every_client(make_exchange, ib_client) -> None:
    ex = await make_exchange(faults="drop@t=2018-01-02T13:00")
    a = await ib_client(client_id=1, ex=ex)
    b = await ib_client(client_id=2, ex=ex)
    lost = [asyncio.Event(), asyncio.Event()]
    a.disconnectedEvent += lambda: lost[0].set()
    b.disconnectedEvent += lambda: lost[1].set()
    await ex.advance_to(dt.datetime(2018, 1, 2, 12, 59, tzinfo=UTC))
    assert a.isConnected() and b.isConnected()
    await ex.advance_to(dt.datetime(2018, 1, 2, 13, 1, tzinfo=UTC))
    await asyncio.wait_for(asyncio.gather(lost[0].wait(), lost[1].wait()), 5)
    again = await ib_client(client_id=1, ex=ex)  # the server itself keeps listening
    assert again.isConnected()


async def test_rate_reject_rejects_every_order_as_ib_words_it(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="rate:reject=1")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    trades = [ib.placeOrder(c, LimitOrder("BUY", 1, 20.0 + k, tif="GTC")) for k in range(3)]
    await until(lambda: all(t.isDone() for t in trades), what="rejects")
    assert all(any(e.errorCode == 201 for e in t.log) for t in trades)
    assert ex.open_orders() == []
