"""Intraday bars, quote bars, streams and ticks with the real ib_async client at 157 and 178,
checked against the intraday paths the fills use (``universe.intraday_path``) and ``quote``."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from ib_async import Future

pytestmark = pytest.mark.timeout(60)
UTC = dt.timezone.utc
VERSIONS = [157, 178]


async def setup(make_exchange, ib_client, version: int):
    ex = await make_exchange(max_server_version=version, pacing=False)
    ib = await ib_client(ex=ex)
    c = (await ib.reqContractDetailsAsync(Future("CL", exchange="NYMEX")))[0].contract
    return ex, ib, c


def day_of(ex, bar_date: dt.datetime) -> dt.date:
    return ex.feed.trade_date("CL", bar_date.astimezone(UTC) + dt.timedelta(seconds=1))


@pytest.mark.parametrize("version", VERSIONS)
async def test_intraday_bars_add_up_to_the_daily_bar(make_exchange, ib_client, version: int) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, version)
    daily = {b.date: b for b in await ib.reqHistoricalDataAsync(c, "", "3 D", "1 day", "TRADES", False)}
    assert len(daily) == 3
    for size, minutes in (("1 hour", 60), ("30 mins", 30), ("5 mins", 5), ("1 min", 1)):
        bars = await ib.reqHistoricalDataAsync(c, "", "4 D", size, "TRADES", False)  # 3 closed + today's
        by_day = defaultdict(list)
        for b in bars:
            assert b.date.tzinfo is not None and b.date.minute % minutes == 0 and b.date.second == 0
            by_day[day_of(ex, b.date)].append(b)
        complete = [d for d in by_day if d in daily]
        assert len(complete) == 3, size
        for d in complete:
            got, want = by_day[d], daily[d]
            assert got[0].open == want.open and got[-1].close == want.close, (size, d)
            assert max(b.high for b in got) == want.high and min(b.low for b in got) == want.low
            assert sum(b.volume for b in got) == want.volume
            assert got[0].date.astimezone(UTC) == ex.feed.bounds("CL", d)[0]  # first bar at the session open
        path = ex.universe.intraday_path(c.conId, complete[-1])
        if minutes == 1:  # one bar per path minute, at the path's price
            mins = [b for b in bars if day_of(ex, b.date) == complete[-1]]
            assert [b.close for b in mins] == [float(p) for p in path.price]
    today = [b for b in bars if day_of(ex, b.date) not in daily]  # the session in progress, up to now
    now = ex.clock.now()
    assert today and today[-1].date.astimezone(UTC) <= now
    path = ex.universe.intraday_path(c.conId, ex.feed.trade_date("CL", now))
    assert today[-1].close == float(path.price[path.last_step_at_or_before(now)])


@pytest.mark.parametrize("version", VERSIONS)
async def test_weekly_bars_group_the_daily_bars(make_exchange, ib_client, version: int) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, version)
    daily = await ib.reqHistoricalDataAsync(c, "", "2 M", "1 day", "TRADES", False)
    weekly = await ib.reqHistoricalDataAsync(c, "", "2 M", "1 week", "TRADES", False)
    assert 7 <= len(weekly) <= 10
    for w in weekly:
        days = [b for b in daily if b.date.isocalendar()[:2] == w.date.isocalendar()[:2]]
        assert w.date == days[-1].date  # labelled by its last session
        assert (w.open, w.close) == (days[0].open, days[-1].close)
        assert w.high == max(b.high for b in days) and w.low == min(b.low for b in days)
        assert w.volume == sum(b.volume for b in days)


@pytest.mark.parametrize("version", VERSIONS)
async def test_midpoint_and_bid_ask_bars_as_ib_defines_them(make_exchange, ib_client, version: int) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, version)
    trades = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 hour", "TRADES", False)
    mid = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 hour", "MIDPOINT", False)
    ba = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 hour", "BID_ASK", False)
    assert [b.date for b in trades] == [b.date for b in mid] == [b.date for b in ba]
    assert any(t.close != m.close for t, m in zip(trades, mid))
    assert all(b.volume == -1 and b.barCount == -1 for b in mid + ba)
    bar = ba[2]
    start = bar.date.astimezone(UTC)
    path = ex.universe.intraday_path(c.conId, day_of(ex, bar.date))
    quotes = [ex.universe.quote(c.conId, path.step_time(i)) for i in range(path.n_steps)
              if start <= path.step_time(i) - dt.timedelta(seconds=30) < start + dt.timedelta(hours=1)]  # fmt: skip
    assert len(quotes) == 60
    bids, asks = [q.bid for q in quotes], [q.ask for q in quotes]
    assert bar.open == pytest.approx(sum(bids) / 60) and bar.close == pytest.approx(sum(asks) / 60)
    assert bar.high == max(asks) and bar.low == min(bids)
    m = mid[2]
    assert m.open == pytest.approx((bids[0] + asks[0]) / 2) and m.close == pytest.approx((bids[-1] + asks[-1]) / 2)


@pytest.mark.parametrize("version", VERSIONS)
async def test_bad_durations_and_bar_sizes_end_the_request(make_exchange, ib_client, version: int) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, version)
    errors: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
    for duration, size, code in (("5X", "1 day", 321), ("5D", "1 day", 321), ("0 D", "1 day", 321),
                                 ("1 D", "7 mins", 321), ("1 D", "5 secs", 162)):  # fmt: skip
        n0 = len(errors)
        bars = await ib.reqHistoricalDataAsync(c, "", duration, size, "TRADES", False, timeout=2)
        assert len(bars) == 0 and errors[n0:] and errors[-1][1] == code, (duration, size, errors[n0:])
        assert errors[-1][0] == bars.reqId  # on the request's own id
    assert len(await ib.reqHistoricalDataAsync(c, "", "60 S", "1 min", "TRADES", False)) >= 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_keep_up_to_date_streams_bars_as_the_clock_moves(make_exchange, ib_client, until, version: int) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, version)
    bars = await ib.reqHistoricalDataAsync(c, "", "1 D", "5 mins", "TRADES", False, keepUpToDate=True)
    n0, last0 = len(bars), bars[-1].date
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=30))
    await until(lambda: len(bars) == n0 + 6, what="six more 5-minute bars")
    fresh = await ib.reqHistoricalDataAsync(c, "", "1 D", "5 mins", "TRADES", False)
    assert bars[-7].date == last0
    assert [(b.date, b.open, b.high, b.low, b.close, b.volume) for b in bars[-7:]] == \
        [(b.date, b.open, b.high, b.low, b.close, b.volume) for b in fresh[-7:]]
    [session] = [s for s in ex.registry.open_connections() if s.client_id == 1]
    assert session.data.streams.count() == 1
    ib.cancelHistoricalData(bars)
    await until(lambda: session.data.streams.count() == 0, what="stream cancelled")
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=30))
    assert len(bars) == n0 + 6


@pytest.mark.parametrize("version", VERSIONS)
async def test_real_time_bars_from_the_path(make_exchange, ib_client, until, version: int) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, version)
    t0 = ex.clock.now()
    rtb = ib.reqRealTimeBars(c, 5, "TRADES", False)
    await ex.advance_to(t0 + dt.timedelta(minutes=2))
    await until(lambda: len(rtb) == 24, what="24 five-second bars")
    path = ex.universe.intraday_path(c.conId, ex.feed.trade_date("CL", t0))
    for b in rtb:
        t = b.time.astimezone(UTC)
        i = path.last_step_at_or_before(t + dt.timedelta(seconds=4))
        assert b.close == float(path.price[i])
        printed = path.step_time(i) >= t
        assert b.volume == (int(path.cum_volume[i] - path.cum_volume[i - 1]) if printed else 0)
    assert sum(1 for b in rtb if b.volume > 0) <= 2  # one print a minute
    ib.cancelRealTimeBars(rtb)


@pytest.mark.parametrize("version", VERSIONS)
async def test_historical_ticks_and_tick_by_tick_from_the_path(make_exchange, ib_client, until, version: int) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, version)
    now = ex.clock.now()
    path = ex.universe.intraday_path(c.conId, ex.feed.trade_date("CL", now))
    last = await ib.reqHistoricalTicksAsync(c, "", now, 20, "TRADES", False)
    assert len(last) == 20 and last[-1].time <= now
    for t in last:
        i = path.last_step_at_or_before(t.time)
        assert t.time == path.step_time(i) and t.price == float(path.price[i])
        assert t.size == int(path.cum_volume[i] - path.cum_volume[i - 1])
    quotes = await ib.reqHistoricalTicksAsync(c, "", now, 5, "BID_ASK", False)
    for q in quotes:
        want = ex.universe.quote(c.conId, q.time)
        assert (q.priceBid, q.priceAsk, q.sizeBid, q.sizeAsk) == (want.bid, want.ask, want.bid_size, want.ask_size)
    start = now - dt.timedelta(hours=2)
    after = await ib.reqHistoricalTicksAsync(c, start, "", 7, "MIDPOINT", False)
    assert len(after) == 7 and after[0].time >= start and after == sorted(after, key=lambda t: t.time)
    ticker = ib.reqTickByTickData(c, "Last")
    bidask = ib.reqTickByTickData(c, "BidAsk")
    assert bidask is ticker  # ib_async keeps one ticker per contract
    lasts: list = []
    quotes_seen: list = []

    def collect(t) -> None:  # ib_async clears the list at each update
        lasts.extend(x for x in t.tickByTicks if hasattr(x, "price"))
        quotes_seen.extend(x for x in t.tickByTicks if hasattr(x, "bidPrice"))

    ticker.updateEvent += collect
    await ex.advance_to(now + dt.timedelta(minutes=10))
    await until(lambda: len(lasts) >= 9 and quotes_seen, what="tick-by-tick prints")
    prices = [float(path.price[i]) for i in range(path.last_step_at_or_before(now) + 1,
                                                   path.last_step_at_or_before(now + dt.timedelta(minutes=10)) + 1)]  # fmt: skip
    assert [t.price for t in lasts] == prices
    q = ex.universe.quote(c.conId, ex.clock.now())
    assert (quotes_seen[-1].bidPrice, quotes_seen[-1].askPrice) == (q.bid, q.ask)
    ib.cancelTickByTickData(c, "Last")
    ib.cancelTickByTickData(c, "BidAsk")


@pytest.mark.parametrize("version", VERSIONS)
async def test_market_depth_around_the_touch(make_exchange, ib_client, until, version: int) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, version)
    ticker = ib.reqMktDepth(c, 5)
    await until(lambda: len(ticker.domBids) == 5 and len(ticker.domAsks) == 5, what="five levels a side")
    q = ex.universe.quote(c.conId, ex.clock.now())
    assert (ticker.domBids[0].price, ticker.domAsks[0].price) == (q.bid, q.ask)
    assert (ticker.domBids[0].size, ticker.domAsks[0].size) == (q.bid_size, q.ask_size)
    assert [round(a.price - q.ask, 6) for a in ticker.domAsks] == [round(k * 0.01, 6) for k in range(5)]
    assert [round(q.bid - b.price, 6) for b in ticker.domBids] == [round(k * 0.01, 6) for k in range(5)]
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=20))
    q2 = ex.universe.quote(c.conId, ex.clock.now())
    await until(lambda: ticker.domBids[0].price == q2.bid and ticker.domAsks[0].price == q2.ask, what="book moved")
    # IB's limit: three distinct depth books per connection
    others = [ib.reqMktDepth(cd.contract, 3) for cd in (await ib.reqContractDetailsAsync(Future("CL")))[1:4]]
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    await until(lambda: errors == [309], what="the fourth book refused")
    [session] = [s for s in ex.registry.open_connections() if s.client_id == 1]
    assert session.data.streams.count() == 3
    for t in [ticker, *others]:
        ib.cancelMktDepth(t.contract)
    await until(lambda: session.data.streams.count() == 0, what="books cancelled")


async def test_streams_end_with_the_connection(make_exchange, ib_client, until) -> None:
    ex, ib, c = await setup(make_exchange, ib_client, 178)
    ib.reqMktDepth(c, 3)
    ib.reqRealTimeBars(c, 5, "MIDPOINT", False)
    ib.reqTickByTickData(c, "MidPoint")
    await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", False, keepUpToDate=True)
    [session] = [s for s in ex.registry.open_connections() if s.client_id == 1]
    await until(lambda: session.data.streams.count() == 4, what="four streams")
    ib.disconnect()
    await until(lambda: session.closed, what="session closed")
    assert session.data.streams.count() == 0
    await ex.advance_to(ex.clock.now() + dt.timedelta(hours=1))  # nothing left to play, nothing fails
