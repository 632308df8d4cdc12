"""SimMarketUniverse: bars, term structure, continuous history, quotes inside/outside sessions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from hydra_engine.sim.clock import SimClock
from hydra_engine.sim.market_types import MarketUniverse
from hydra_engine.sim.universe import SimMarketUniverse, build_universe

UTC = dt.timezone.utc
D = dt.date


@pytest.fixture(scope="module")
def universe() -> SimMarketUniverse:
    return build_universe(seed=7)


def _on_grid(x: float, tick: float) -> bool:
    return abs(x / tick - round(x / tick)) < 1e-6


def test_default_universe_shape(universe: SimMarketUniverse) -> None:
    u: MarketUniverse = universe  # structural check against the seam
    assert [s.symbol for s in u.specs()] == ["CL", "ZO", "ZR", "LBR"]
    cl = u.spec("CL")
    assert cl is not None and (cl.exchange, cl.currency, cl.multiplier, cl.min_tick) == ("NYMEX", "USD", 1000, 0.01)
    assert cl.hours.time_zone == "US/Central" and cl.hours.open == dt.time(17) and cl.hours.close == dt.time(16)
    zo = u.spec("ZO")
    assert zo is not None and zo.listed_months == "HKNUZ" and zo.hours.close == dt.time(13, 20)
    assert universe.scenario("CL").name == "wti_history" and not universe.scenario("CL").synthetic
    start = universe.default_clock_start()
    assert start.tzinfo is not None
    assert (start.date() - universe.start).days >= 2 * 365
    assert (universe.end - start.date()).days >= 365
    assert universe.start <= dt.datetime.now(UTC).date() <= universe.end  # real-time mode works today


def test_daily_bars_are_consistent_and_on_the_tick_grid(universe: SimMarketUniverse) -> None:
    for sym in universe.symbols:
        tick = universe.spec(sym).min_tick  # type: ignore[union-attr]
        fm = universe.front_month(sym, D(2019, 5, 1))
        bars = universe.daily_bars(fm.con_id, D(2019, 5, 1), 60)
        assert len(bars) == 60
        assert bars[-1].date == D(2019, 5, 1)
        assert [b.date for b in bars] == sorted({b.date for b in bars})
        for b in bars:
            assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
            assert all(_on_grid(x, tick) for x in (b.open, b.high, b.low, b.close, b.wap))
            assert b.volume >= 0 and universe.is_trading_day(sym, b.date)


def test_daily_bars_stop_at_expiry_and_count(universe: SimMarketUniverse) -> None:
    fm = universe.months("ZO", D(2018, 3, 1))[0]
    bars = universe.daily_bars(fm.con_id, D(2018, 12, 31), 10_000)
    assert bars[-1].date == fm.last_trade_date
    assert universe.daily_bars(fm.con_id, D(2018, 3, 1), 0) == []
    assert len(universe.daily_bars(fm.con_id, D(2018, 3, 1), 3)) == 3


def test_daily_bars_never_include_an_unfinished_session_with_a_bound_clock() -> None:
    u = build_universe(seed=7, symbols=["ZO"])
    clock = SimClock.lockstep(dt.datetime(2018, 3, 1, 17, 0, tzinfo=UTC))  # 11:00 CT, session open
    u.bind_clock(clock)
    fm = u.front_month("ZO", D(2018, 3, 1))
    assert u.daily_bars(fm.con_id, D(2018, 3, 5), 5)[-1].date == D(2018, 2, 28)
    clock.set(dt.datetime(2018, 3, 1, 19, 20, tzinfo=UTC))  # the close
    assert u.daily_bars(fm.con_id, D(2018, 3, 5), 5)[-1].date == D(2018, 3, 1)


def test_months_are_priced_on_a_term_structure_and_rolling_costs_something(universe: SimMarketUniverse) -> None:
    spreads = []
    for year in range(2016, 2027):
        for month in (2, 5, 8, 11):
            day = D(year, month, 3)
            while not universe.is_trading_day("CL", day):
                day += dt.timedelta(days=1)
            months = universe.months("CL", day)
            closes = [universe.daily_bars(m.con_id, day, 1)[-1].close for m in months[:2]]
            spreads.append(closes[1] - closes[0])
    assert sum(1 for s in spreads if s != 0) >= 0.8 * len(spreads)
    # Both contango (positive calendar spread) and backwardation occur over the years.
    assert sum(1 for s in spreads if s > 0) >= 3 and sum(1 for s in spreads if s < 0) >= 3


def test_front_month_gets_most_volume_until_the_roll(universe: SimMarketUniverse) -> None:
    day = D(2018, 2, 1)
    m = universe.months("ZO", day)
    vol = [universe.daily_bars(x.con_id, day, 10) for x in m[:3]]
    assert sum(b.volume for b in vol[0]) > sum(b.volume for b in vol[1]) > sum(b.volume for b in vol[2])


def test_continuous_bars_are_back_adjusted_across_rolls(universe: SimMarketUniverse) -> None:
    end = D(2019, 6, 28)
    bars = universe.continuous_bars("ZO", end, 400)
    assert len(bars) == 400 and bars[-1].date == end
    front = universe.front_month("ZO", end)
    assert bars[-1].close == universe.daily_bars(front.con_id, end, 1)[-1].close  # newest unadjusted
    # Around an expiry the continuous series moves like the new front, without the roll gap.
    old = universe.months("ZO", D(2019, 3, 1))[0]  # ZOH9
    new = universe.months("ZO", old.last_trade_date + dt.timedelta(days=1))[0]
    roll_day = old.last_trade_date
    by_date = {b.date: b for b in bars}
    after = universe.daily_bars(new.con_id, D(2019, 6, 28), 400)
    nd = {b.date: b.close for b in after}
    next_day = min(d for d in nd if d > roll_day)
    cont_ret = by_date[next_day].close / by_date[roll_day].close
    assert cont_ret == pytest.approx(nd[next_day] / nd[roll_day], rel=2e-3)
    contfut = universe.continuous_con_id("ZO")
    assert universe.daily_bars(contfut, end, 5) == list(bars[-5:])
    assert universe.month(contfut) is None


def test_quote_inside_session_follows_the_path(universe: SimMarketUniverse) -> None:
    day = D(2018, 3, 1)
    fm = universe.front_month("ZO", day)
    tick = universe.spec("ZO").min_tick  # type: ignore[union-attr]
    path = universe.intraday_path(fm.con_id, day)
    bar = universe.daily_bars(fm.con_id, day, 2)
    at = dt.datetime(2018, 3, 1, 16, 30, 15, tzinfo=UTC)  # 10:30 CT
    q = universe.quote(fm.con_id, at)
    i = path.last_step_at_or_before(at)
    assert q.last == path.price[i]
    assert q.bid < q.ask and q.bid <= q.last <= q.ask + tick
    assert _on_grid(q.bid, tick) and _on_grid(q.ask, tick)
    assert (q.ask - q.bid) / tick >= 2  # thin market: several ticks wide
    assert q.open == bar[-1].open and q.close == bar[-2].close
    assert bar[-1].low <= q.low <= q.high <= bar[-1].high
    assert 0 < q.volume < bar[-1].volume
    later = universe.quote(fm.con_id, at + dt.timedelta(hours=2))
    assert later.volume >= q.volume and later.high >= q.high and later.low <= q.low
    # The path is consistent with the daily bar.
    assert path.price[0] == bar[-1].open and path.price[-1] == bar[-1].close
    assert path.price.max() == bar[-1].high and path.price.min() == bar[-1].low
    assert path.cum_volume[-1] == bar[-1].volume


def test_quote_outside_session_is_the_last_close(universe: SimMarketUniverse) -> None:
    fm = universe.front_month("ZO", D(2018, 3, 2))
    thu, fri = universe.daily_bars(fm.con_id, D(2018, 3, 2), 2)
    weekend = universe.quote(fm.con_id, dt.datetime(2018, 3, 3, 15, 0, tzinfo=UTC))
    assert weekend.last == fri.close and weekend.close == thu.close
    assert weekend.volume == fri.volume and weekend.high == fri.high
    assert weekend.bid < fri.close + 1e-9 <= weekend.ask + 1e-9
    # Between the 13:20 CT close and the 19:00 CT reopen.
    evening = universe.quote(fm.con_id, dt.datetime(2018, 3, 2, 20, 0, tzinfo=UTC))
    assert evening == weekend


def test_deterministic_across_instances() -> None:
    a, b = build_universe(seed=9, symbols=["CL", "ZO"]), build_universe(seed=9, symbols=["CL", "ZO"])
    at = dt.datetime(2019, 4, 2, 15, 0, tzinfo=UTC)
    for sym in ("CL", "ZO"):
        fm = a.front_month(sym, at.date())
        assert a.quote(fm.con_id, at) == b.quote(fm.con_id, at)
        assert a.continuous_bars(sym, at.date(), 30) == b.continuous_bars(sym, at.date(), 30)
    assert not np.array_equal(a.intraday_path(a.front_month("ZO", at.date()).con_id, at.date()).price,
                              build_universe(seed=10, symbols=["ZO"]).intraday_path(
                                  a.front_month("ZO", at.date()).con_id, at.date()).price)


def test_same_prices_in_a_fresh_process_with_another_hash_seed() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import datetime as dt, structlog\n"
        "structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))\n"
        "from hydra_engine.sim.universe import build_universe\n"
        "u = build_universe(seed=9, symbols=['CL', 'ZO'])\n"
        "d = dt.date(2019, 4, 2)\n"
        "at = dt.datetime(2019, 4, 2, 15, 0, tzinfo=dt.timezone.utc)\n"
        "fm = u.front_month('ZO', d)\n"
        "print(repr((fm.con_id, u.continuous_bars('CL', d, 3)[-1].close, u.quote(fm.con_id, at).last,"
        " [(f.qty, f.price) for f in u.match(fm.con_id, 'BUY', 7, None, at, at + dt.timedelta(hours=3))])))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=env, cwd=str(Path(__file__).resolve().parents[2]), check=True).stdout.strip()
    u = build_universe(seed=9, symbols=["CL", "ZO"])
    d = D(2019, 4, 2)
    at = dt.datetime(2019, 4, 2, 15, 0, tzinfo=UTC)
    fm = u.front_month("ZO", d)
    here = (fm.con_id, u.continuous_bars("CL", d, 3)[-1].close, u.quote(fm.con_id, at).last,
            [(f.qty, f.price) for f in u.match(fm.con_id, "BUY", 7, None, at, at + dt.timedelta(hours=3))])
    assert out.splitlines()[-1] == repr(here)
