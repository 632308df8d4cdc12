"""Scenario ground truth: the planted relation and the changes are measurable where stated."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from hydra_engine.sim.scenarios import ScenarioChoice, feature_and_target, scenario_names
from hydra_engine.sim.universe import SimMarketUniverse, build_universe, measure_coefficient

D = dt.date


def _log_returns(u: SimMarketUniverse, symbol: str, first: dt.date, last: dt.date) -> np.ndarray:
    closes = np.asarray([b.close for b in u.continuous_bars(symbol, last, 5000) if b.date >= first])
    return np.diff(np.log(closes))


def test_registry_and_ground_truth_record() -> None:
    assert {"steady", "drift_shift", "vol_doubling", "volume_dry_up", "momentum_flip",
            "momentum_fade", "mean_reversion_flip", "regime_mix"} <= set(scenario_names())
    u = build_universe(seed=3, symbols=["ZO"], scenarios={"ZO": "momentum_flip"})
    info = u.scenario("ZO")
    assert info.name == "momentum_flip" and info.symbol == "ZO" and info.seed == 3
    assert len(info.change_dates) == 1
    change = info.change_dates[0]
    assert u.default_clock_start().date() < change < u.end
    assert info.coefficient_before == 0.25 and info.coefficient_after == -0.25
    assert info.regime_at(change - dt.timedelta(days=1)) == info.before
    assert info.regime_at(change) == info.after


def test_bad_scenario_choices_are_named() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope' for ZO"):
        build_universe(symbols=["ZO"], scenarios={"ZO": "nope"})
    with pytest.raises(ValueError, match="needs 1 change date"):
        build_universe(symbols=["ZO"], scenarios={"ZO": ScenarioChoice("vol_doubling", change_dates=())})
    with pytest.raises(ValueError, match="not among the symbols"):
        build_universe(symbols=["ZO"], scenarios={"LBR": "steady"})
    with pytest.raises(ValueError, match="unknown symbol 'QQQ'"):
        build_universe(symbols=["QQQ"])


def test_momentum_coefficient_measurable_before_and_flips_after() -> None:
    u = build_universe(seed=3, symbols=["ZO"], scenarios={"ZO": "momentum_flip"})
    change = u.scenario("ZO").change_dates[0]
    before = measure_coefficient(u, "ZO", u.start, change - dt.timedelta(days=1))
    after = measure_coefficient(u, "ZO", change, change + dt.timedelta(days=3 * 365))
    assert before > 0.15
    assert after < -0.15
    # The agent sees back-adjusted CONTFUT bars, not the spot: the relation survives there too.
    r = _log_returns(u, "ZO", u.start, change - dt.timedelta(days=1))
    f, y = feature_and_target(r, u.scenario("ZO").lookback_days)
    assert np.polyfit(f, y, 1)[0] > 0.1


def test_changed_dates_and_overrides_are_honoured() -> None:
    change = D(2019, 3, 4)
    choice = ScenarioChoice("momentum_fade", change_dates=(change,), overrides={"coefficient": (-0.3, 0.0)})
    u = build_universe(seed=5, symbols=["ZO"], scenarios={"ZO": choice})
    info = u.scenario("ZO")
    assert info.change_dates == (change,)
    assert info.coefficient_before == -0.3
    assert measure_coefficient(u, "ZO", u.start, change - dt.timedelta(days=1)) < -0.18
    assert abs(measure_coefficient(u, "ZO", change, u.end)) < 0.08


def test_volatility_doubles_at_the_change() -> None:
    u = build_universe(seed=4, symbols=["LBR"], scenarios={"LBR": "vol_doubling"})
    change = u.scenario("LBR").change_dates[0]
    before = np.std(_log_returns(u, "LBR", change - dt.timedelta(days=500), change - dt.timedelta(days=1)))
    after = np.std(_log_returns(u, "LBR", change, change + dt.timedelta(days=500)))
    assert 1.6 < after / before < 2.5


def test_volume_dries_up_and_spreads_widen() -> None:
    u = build_universe(seed=4, symbols=["ZR"], scenarios={"ZR": "volume_dry_up"})
    change = u.scenario("ZR").change_dates[0]
    bars = u.continuous_bars("ZR", change + dt.timedelta(days=300), 5000)
    before = [b.volume for b in bars if change - dt.timedelta(days=300) <= b.date < change]
    after = [b.volume for b in bars if b.date >= change]
    assert np.mean(after) < 0.35 * np.mean(before)
    assert 100 < np.mean(before) < 5000  # a thin market
    q_before = u.quote(u.front_month("ZR", change - dt.timedelta(days=30)).con_id,
                       dt.datetime.combine(change - dt.timedelta(days=30), dt.time(23, 0), dt.timezone.utc))
    q_after = u.quote(u.front_month("ZR", change + dt.timedelta(days=30)).con_id,
                      dt.datetime.combine(change + dt.timedelta(days=30), dt.time(23, 0), dt.timezone.utc))
    assert (q_after.ask - q_after.bid) > (q_before.ask - q_before.bid)


def test_drift_shift_changes_sign() -> None:
    u = build_universe(seed=2, symbols=["DC"], scenarios={"DC": "drift_shift"})
    info = u.scenario("DC")
    assert info.before.drift_per_day > 0 > info.after.drift_per_day


def test_same_seed_same_market_other_seed_differs() -> None:
    a = build_universe(seed=11, symbols=["ZO"])
    b = build_universe(seed=11, symbols=["ZO"])
    c = build_universe(seed=12, symbols=["ZO"])
    day = D(2018, 6, 1)
    fm = a.front_month("ZO", day)
    assert a.daily_bars(fm.con_id, day, 50) == b.daily_bars(fm.con_id, day, 50)
    assert a.daily_bars(fm.con_id, day, 50) != c.daily_bars(fm.con_id, day, 50)


@pytest.mark.slow
def test_planted_coefficient_is_recovered_across_seeds() -> None:
    before, after = [], []
    for seed in range(12):
        u = build_universe(seed=seed, symbols=["ZO"], scenarios={"ZO": "momentum_flip"})
        change = u.scenario("ZO").change_dates[0]
        before.append(measure_coefficient(u, "ZO", u.start, change - dt.timedelta(days=1)))
        after.append(measure_coefficient(u, "ZO", change, u.end))
    assert abs(np.mean(before) - 0.25) < 0.05
    assert abs(np.mean(after) + 0.25) < 0.05
