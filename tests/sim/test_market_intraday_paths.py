"""Intraday paths: consistent with the daily bar for any OHLC, deterministic, lazily cached."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_engine.sim.intraday_paths import PathCache, build_path

UTC = dt.timezone.utc
OPEN = dt.datetime(2018, 3, 1, 1, 0, tzinfo=UTC)
CLOSE = dt.datetime(2018, 3, 1, 19, 20, tzinfo=UTC)
LIQUID = (dt.datetime(2018, 3, 1, 14, 30, tzinfo=UTC), CLOSE)
TICK = 0.25


@st.composite
def ohlc(draw: st.DrawFn) -> tuple[float, float, float, float]:
    ticks = sorted(draw(st.lists(st.integers(400, 2000), min_size=4, max_size=4)))
    low, a, b, high = (t * TICK for t in ticks)
    o, c = (a, b) if draw(st.booleans()) else (b, a)
    return o, high, low, c


@settings(max_examples=60, deadline=None)
@given(bar=ohlc(), seed=st.integers(0, 2**31), volume=st.integers(0, 5000))
def test_path_matches_the_daily_bar(bar: tuple[float, float, float, float], seed: int, volume: int) -> None:
    o, h, l, c = bar
    path = build_path(seed, 123, dt.date(2018, 3, 1), (OPEN, CLOSE), LIQUID, bar, volume, TICK)
    assert path.n_steps == 1100
    assert path.price[0] == o and path.price[-1] == c
    assert path.price.max() == h and path.price.min() == l
    assert np.allclose(path.price / TICK, np.round(path.price / TICK))
    assert path.cum_volume[-1] == volume and np.all(np.diff(path.cum_volume) >= 0)
    assert path.step_time(0) > OPEN and path.step_time(path.n_steps - 1) < CLOSE


def test_paths_are_deterministic_and_differ_by_day_and_contract() -> None:
    bar = (400.0, 410.0, 390.0, 405.0)
    a = build_path(7, 1, dt.date(2018, 3, 1), (OPEN, CLOSE), LIQUID, bar, 900, TICK)
    b = build_path(7, 1, dt.date(2018, 3, 1), (OPEN, CLOSE), LIQUID, bar, 900, TICK)
    c = build_path(7, 2, dt.date(2018, 3, 1), (OPEN, CLOSE), LIQUID, bar, 900, TICK)
    assert np.array_equal(a.price, b.price) and np.array_equal(a.cum_volume, b.cum_volume)
    assert not np.array_equal(a.price, c.price)
    # Most volume trades in liquid hours.
    liquid_start = a.last_step_at_or_before(LIQUID[0])
    assert a.cum_volume[-1] - a.cum_volume[liquid_start] > 0.6 * a.cum_volume[-1]


def test_step_lookup_boundaries() -> None:
    p = build_path(7, 1, dt.date(2018, 3, 1), (OPEN, CLOSE), LIQUID, (400.0, 410.0, 390.0, 405.0), 900, TICK)
    t0 = p.step_time(0)
    assert p.last_step_at_or_before(t0 - dt.timedelta(microseconds=1)) == -1
    assert p.last_step_at_or_before(t0) == 0
    assert p.first_step_after(t0) == 1
    assert p.first_step_after(OPEN) == 0
    assert p.first_step_after(CLOSE) == p.n_steps


def test_path_cache_is_small_lru() -> None:
    cache = PathCache(2)
    paths = [build_path(7, i, dt.date(2018, 3, 1), (OPEN, CLOSE), LIQUID, (400.0, 410.0, 390.0, 405.0), 9, TICK)
             for i in range(3)]
    for p in paths:
        cache.put(p)
    assert len(cache) == 2
    assert cache.get((0, dt.date(2018, 3, 1))) is None
    assert cache.get((2, dt.date(2018, 3, 1))) is paths[2]
