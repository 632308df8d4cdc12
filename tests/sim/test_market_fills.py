"""The exchange's fill model through SimMarketUniverse.match."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from hydra_engine.sim.universe import SimMarketUniverse, build_universe

UTC = dt.timezone.utc
D = dt.date


@pytest.fixture(scope="module")
def universe() -> SimMarketUniverse:
    return build_universe(seed=7, symbols=["CL", "ZO"])


def _ct(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    """Chicago winter time (UTC-6) to UTC."""
    return dt.datetime.combine(day, dt.time(hh, mm), UTC) + dt.timedelta(hours=6)


def _on_grid(x: float, tick: float) -> bool:
    return abs(x / tick - round(x / tick)) < 1e-6


def test_match_is_deterministic_and_on_the_tick_grid(universe: SimMarketUniverse) -> None:
    day = D(2018, 2, 6)
    fm = universe.front_month("ZO", day)
    start, end = _ct(day, 8, 45), _ct(day, 13, 20)
    a = universe.match(fm.con_id, "BUY", 12, None, start, end)
    b = universe.match(fm.con_id, "BUY", 12, None, start, end)
    assert a == b and sum(f.qty for f in a) == 12
    tick = universe.spec("ZO").min_tick  # type: ignore[union-attr]
    assert all(_on_grid(f.price, tick) for f in a)
    assert all(start < f.time <= end for f in a)
    assert [f.time for f in a] == sorted(f.time for f in a)


def test_no_fill_uses_a_price_at_or_before_start(universe: SimMarketUniverse) -> None:
    # Find sessions whose low prints once and is never revisited; start the order exactly at
    # that print with a buy limit at the low. Only a fill model that peeked at prices at or
    # before ``start`` could fill it.
    checked = 0
    day = D(2018, 1, 2)
    while checked < 5 and day < D(2018, 12, 31):
        day += dt.timedelta(days=1)
        if not universe.is_trading_day("ZO", day):
            continue
        fm = universe.front_month("ZO", day)
        path = universe.intraday_path(fm.con_id, day)
        i_low = int(np.argmin(path.price))
        low = float(path.price[i_low])
        if i_low >= path.n_steps - 2 or float(path.price[i_low + 1:].min()) <= low:
            continue
        start = path.step_time(i_low)
        assert universe.quote(fm.con_id, start).last == low  # the low is visible at start
        assert universe.match(fm.con_id, "BUY", 3, low, start, path.close_utc) == []
        # Placed a second earlier, a limit one tick above the low trades through at that print.
        tick = universe.spec("ZO").min_tick  # type: ignore[union-attr]
        before = universe.match(fm.con_id, "BUY", 1, low + tick, start - dt.timedelta(seconds=1),
                                path.close_utc)
        assert before and before[0].time == start and before[0].price <= low + tick
        mkt = universe.match(fm.con_id, "BUY", 1, None, start, path.close_utc)
        assert mkt and mkt[0].time > start
        checked += 1
    assert checked == 5


def test_limit_orders_fill_only_when_the_path_reaches_them(universe: SimMarketUniverse) -> None:
    day = D(2018, 2, 7)
    fm = universe.front_month("ZO", day)
    path = universe.intraday_path(fm.con_id, day)
    start, end = path.open_utc - dt.timedelta(hours=1), path.close_utc
    below = float(path.price.min()) - 5.0
    assert universe.match(fm.con_id, "BUY", 2, below, start, end) == []
    above = float(path.price.max()) + 5.0
    assert universe.match(fm.con_id, "SELL", 2, above, start, end) == []
    generous = universe.match(fm.con_id, "BUY", 2, above, start, end)
    assert sum(f.qty for f in generous) == 2 and all(f.price <= above for f in generous)
    mid = float(np.median(path.price))
    passive = universe.match(fm.con_id, "SELL", 2, mid, start, end)
    assert all(f.price >= mid for f in passive)


def test_big_order_fills_in_parts_and_maybe_not_within_the_session(universe: SimMarketUniverse) -> None:
    day = D(2018, 2, 8)
    fm = universe.front_month("ZO", day)
    bar = universe.daily_bars(fm.con_id, day, 1)[-1]
    o, c = universe.session_bounds("ZO", day)
    big = max(50, bar.volume)  # as large as the whole day's volume
    fills = universe.match(fm.con_id, "BUY", big, None, o - dt.timedelta(minutes=1), c)
    filled = sum(f.qty for f in fills)
    assert len(fills) > 5
    assert 0 < filled < big  # the participation cap leaves the rest unfilled
    small = universe.match(fm.con_id, "BUY", 1, None, o - dt.timedelta(minutes=1), c)
    assert len(small) == 1 and small[0].qty == 1


def test_market_order_cost_grows_with_size(universe: SimMarketUniverse) -> None:
    # Cost of each fill against the path print it traded on: spread + impact + noise, no drift.
    costs: dict[int, list[float]] = {1: [], 10: [], 40: []}
    day = D(2018, 1, 8)
    n = 0
    while n < 20:
        day += dt.timedelta(days=1)
        if not universe.is_trading_day("ZO", day):
            continue
        n += 1
        fm = universe.front_month("ZO", day)
        path = universe.intraday_path(fm.con_id, day)
        for qty in costs:
            fills = universe.match(fm.con_id, "BUY", qty, None, _ct(day, 9, 0), _ct(day, 13, 20))
            for f in fills:
                i = path.last_step_at_or_before(f.time)
                assert path.step_time(i) == f.time
                costs[qty].extend([f.price - float(path.price[i])] * f.qty)
    c1, c10, c40 = (float(np.mean(costs[q])) for q in (1, 10, 40))
    assert c1 > 0  # you pay at least part of the spread
    assert c10 > c1
    assert c40 > c10


def test_split_windows_give_the_same_fills(universe: SimMarketUniverse) -> None:
    day = D(2018, 2, 6)
    fm = universe.front_month("ZO", day)
    o, c = universe.session_bounds("ZO", day)
    whole = universe.match(fm.con_id, "BUY", 60, None, o, c)
    parts: list = []
    remaining = 60
    t = o
    while t < c and remaining > 0:
        nxt = min(t + dt.timedelta(minutes=17), c)
        got = universe.match(fm.con_id, "BUY", remaining, None, t, nxt)
        parts.extend(got)
        remaining -= sum(f.qty for f in got)
        t = nxt
    assert parts == list(whole) and len(whole) > 10
    # A small order resting at the open (window starting exactly at the open) takes the first print.
    first = universe.match(fm.con_id, "BUY", 1, None, o, c)
    assert first[0].time == universe.intraday_path(fm.con_id, day).step_time(0) > o


def test_sell_market_order_is_below_mid(universe: SimMarketUniverse) -> None:
    day = D(2018, 2, 9)
    fm = universe.front_month("CL", day)
    start = _ct(day, 9)
    q = universe.quote(fm.con_id, start + dt.timedelta(minutes=1))
    fills = universe.match(fm.con_id, "SELL", 5, None, start, start + dt.timedelta(minutes=1))
    assert sum(f.qty for f in fills) == 5  # deep market: one minute is enough
    assert fills[0].price <= (q.bid + q.ask) / 2 + 0.05


def test_orders_wait_for_the_next_session(universe: SimMarketUniverse) -> None:
    fri = D(2018, 2, 9)
    fm = universe.front_month("ZO", fri)
    # After Friday's close, over the weekend: no session, no fill.
    assert universe.match(fm.con_id, "BUY", 1, None, _ct(fri, 14), _ct(fri + dt.timedelta(days=2), 12)) == []
    # Through to Monday: fills in Monday's session (opening Sunday 19:00 CT), never before.
    mon = D(2018, 2, 12)
    o, _ = universe.session_bounds("ZO", mon)
    fills = universe.match(fm.con_id, "BUY", 1, None, _ct(fri, 14), _ct(mon, 10))
    assert len(fills) == 1 and fills[0].time >= o


def test_bad_orders_are_refused_clearly(universe: SimMarketUniverse) -> None:
    fm = universe.front_month("ZO", D(2018, 2, 9))
    t = _ct(D(2018, 2, 9), 9)
    with pytest.raises(ValueError, match="qty"):
        universe.match(fm.con_id, "BUY", 0, None, t, t + dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="side"):
        universe.match(fm.con_id, "HOLD", 1, None, t, t + dt.timedelta(hours=1))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown contract month"):
        universe.match(42, "BUY", 1, None, t, t + dt.timedelta(hours=1))


def test_hidden_parameters_differ_by_seed() -> None:
    a = build_universe(seed=1, symbols=["ZO"]).hidden_fill_params("ZO")
    b = build_universe(seed=2, symbols=["ZO"]).hidden_fill_params("ZO")
    assert a != b and a.impact_k > 0 and 0 < a.participation < 1
