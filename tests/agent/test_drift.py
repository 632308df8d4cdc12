"""Detectors against known statistics, and state that survives a round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from hydra_engine.agent.drift import (
    DriftMonitor,
    FeatureMonitor,
    PerformanceMonitor,
    RealizedOutcome,
    TwoSidedCusum,
    UpperCusum,
    lag1_autocorrelation,
    long_run_factor,
    population_stability_index,
    window_factor,
)
from hydra_engine.agent.thresholds import (
    FalseAlarmBudget,
    cusum_arl,
    cusum_threshold,
    expected_alarm_rate,
    long_run_dof,
    psi_critical,
    thresholds_for_budget,
    variance_reference,
)


def test_cusum_arl_matches_published_values():
    # Classic one-sided CUSUM k=0.5 tables: h=4 -> ARL0 ~ 336, h=5 -> ~ 930; ARL1 at 1 sigma h=5 ~ 10.4.
    assert cusum_arl(0.5, 4.0) == pytest.approx(336, rel=0.02)
    assert cusum_arl(0.5, 5.0) == pytest.approx(930, rel=0.02)
    assert cusum_arl(0.5, 5.0, shift=1.0) == pytest.approx(10.4, rel=0.03)


def test_cusum_in_control_run_length_matches_design():
    """Simulated N(0,1) streams: mean run length within 12% of the Markov-chain design value."""
    h = cusum_threshold(200.0, 0.5)
    rng = np.random.default_rng(3)
    n = 4000
    s = np.zeros(n)
    rl = np.zeros(n)
    alive = np.ones(n, bool)
    t = 0
    while alive.any():
        t += 1
        s = np.maximum(0.0, s + rng.standard_normal(n) - 0.5)
        fired = alive & (s > h)
        rl[fired] = t
        alive &= ~fired
    assert rl.mean() == pytest.approx(200.0, rel=0.12)


def test_variance_cusum_design_matches_simulation():
    k = variance_reference(2.0)
    assert k == pytest.approx(1.848, abs=1e-3)
    h = cusum_threshold(150.0, k, "chi2")
    rng = np.random.default_rng(5)
    n = 3000
    s, rl, alive, t = np.zeros(n), np.zeros(n), np.ones(n, bool), 0
    while alive.any():
        t += 1
        s = np.maximum(0.0, s + rng.standard_normal(n) ** 2 - k)
        fired = alive & (s > h)
        rl[fired] = t
        alive &= ~fired
    assert rl.mean() == pytest.approx(150.0, rel=0.12)


def test_budget_sets_thresholds_and_rejects_bad_input():
    t1 = thresholds_for_budget(FalseAlarmBudget.per_feature(0.5, 1))
    t2 = thresholds_for_budget(FalseAlarmBudget.per_feature(2.0, 1))
    assert t1.mean_h > t2.mean_h and t1.var_h > t2.var_h and t1.ks_alpha < t2.ks_alpha
    # A small reference sample needs higher thresholds to keep the same budget.
    t_small = thresholds_for_budget(FalseAlarmBudget.per_feature(0.5, 1), n_reference=100)
    assert t_small.mean_h > t1.mean_h
    with pytest.raises(ValueError, match="system_alarms_per_1000_days"):
        FalseAlarmBudget(0.0, 3)
    with pytest.raises(ValueError, match="n_streams"):
        FalseAlarmBudget(1.0, 0)
    with pytest.raises(ValueError, match="sum to 1"):
        FalseAlarmBudget(1.0, 1, {"mean": 0.5, "var": 0.1, "ks": 0.1, "psi": 0.1})


def test_a_long_run_scale_estimate_raises_the_mean_threshold_to_keep_the_budget():
    """A CUSUM input scaled by a Bartlett long-run variance from 500 days carries a scale error of
    about a quarter (37.5 degrees of freedom), and the alarm rate is convex in the scale: at the
    point-estimate threshold the rate averaged over that error is well over the budget."""
    assert long_run_dof(500, 20) == pytest.approx(37.5)
    budget = FalseAlarmBudget.per_feature(0.5, 1)
    plain = thresholds_for_budget(budget, n_reference=500)
    lrv = thresholds_for_budget(budget, n_reference=500, lrv_bandwidth=20)
    assert lrv.mean_h > plain.mean_h + 1.0
    assert lrv.var_h == plain.var_h  # the variance CUSUM's scale is a plain variance's
    per_side = budget.per_stream / 1000 * budget.shares["mean"] / 2
    assert expected_alarm_rate(lrv.mean_k, lrv.mean_h, "normal", 500, 37.5) <= per_side * 1.02
    assert expected_alarm_rate(plain.mean_k, plain.mean_h, "normal", 500, 37.5) > 2 * per_side
    # With the scale as good as a plain standard deviation's, nothing changes.
    assert thresholds_for_budget(budget, n_reference=500, lrv_bandwidth=1).mean_h == pytest.approx(plain.mean_h, abs=0.01)
    # A longer reference narrows the error and lowers the threshold.
    assert thresholds_for_budget(budget, n_reference=1000, lrv_bandwidth=20).mean_h < lrv.mean_h


def test_window_factor_counts_clustered_extremes_that_the_mean_and_square_miss():
    rng = np.random.default_rng(4)
    iid = rng.standard_normal(2000)
    assert window_factor(iid) == pytest.approx(1.0, abs=0.35)
    # Spells of 40 days in which the values sit at +-1 instead of spreading as a normal: the mean
    # and the square are the same in both spells, the shape is not, and it persists.
    spell = np.repeat(rng.integers(0, 2, 50), 40)
    x = np.where(spell == 0, rng.standard_normal(2000), rng.choice([-1.0, 1.0], 2000) + 0.05 * rng.standard_normal(2000))
    assert window_factor(x) > 1.3 * max(long_run_factor(x), long_run_factor(x * x))


def test_two_sided_cusum_detects_both_directions_and_resets():
    c = TwoSidedCusum(0.5, 4.0)
    fired = [c.update(1.5) for _ in range(5)]
    assert fired[:4] == [[], [], [], []] and fired[4] == [("cusum_mean_up", pytest.approx(5.0))]
    c2 = TwoSidedCusum(0.5, 4.0)
    alarms = [a for _ in range(10) for a in c2.update(-1.5)]
    assert alarms and alarms[0][0] == "cusum_mean_down"
    assert c2.s_hi == 0.0
    u = UpperCusum(1.0, 3.0)
    assert [u.update(2.0) for _ in range(4)][-1] is not None


def test_ks_pvalue_and_psi_on_identical_vs_shifted():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(500)
    same = rng.standard_normal(120)
    shifted = rng.standard_normal(120) + 1.0
    assert stats.ks_2samp(same, ref).pvalue > 0.01
    assert stats.ks_2samp(shifted, ref).pvalue < 1e-6
    psi_same = population_stability_index(ref, same)
    psi_shift = population_stability_index(ref, shifted)
    assert psi_same < psi_critical(120, 500, 10, 0.01) < psi_shift
    assert population_stability_index(ref, ref) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="PSI needs"):
        population_stability_index(ref[:5], same)


def test_feature_monitor_detects_shift_and_volatility():
    t = thresholds_for_budget(FalseAlarmBudget.per_feature(0.5, 1))
    rng = np.random.default_rng(2)
    mon = FeatureMonitor.from_reference("x", rng.standard_normal(500), t)
    quiet = [f for i in range(200) for f in mon.update(float(rng.standard_normal()), f"d{i}")]
    assert len(quiet) <= 1
    shifted = next(i for i in range(200) if mon.update(float(rng.standard_normal() + 1.5), f"s{i}"))
    assert shifted < 30
    mon2 = FeatureMonitor.from_reference("y", rng.standard_normal(500), t)
    vol = [mon2.update(float(3 * rng.standard_normal()), f"v{i}") for i in range(40)]
    kinds = {f.detector for fs in vol for f in fs}
    assert "cusum_var" in kinds
    assert mon.update(math.nan, "nan") == []


def test_autocorrelated_feature_is_whitened():
    rng = np.random.default_rng(4)
    e = rng.standard_normal(3000)
    x = np.empty_like(e)
    x[0] = 0
    for i in range(1, e.size):
        x[i] = 0.95 * x[i - 1] + e[i]
    assert lag1_autocorrelation(x[:500]) == pytest.approx(0.95, abs=0.05)
    assert lag1_autocorrelation(rng.standard_normal(500)) == 0.0 or abs(lag1_autocorrelation(rng.standard_normal(500))) < 0.2
    t = thresholds_for_budget(FalseAlarmBudget.per_feature(0.5, 1))
    mon = FeatureMonitor.from_reference("ar", x[:500], t)
    alarms = [f for i, v in enumerate(x[500:]) for f in mon.update(float(v), str(i))]
    assert len(alarms) <= 3  # 2500 in-control days at 0.5/1000 budget


def test_state_round_trip_resumes_exactly():
    t = thresholds_for_budget(FalseAlarmBudget.per_feature(0.5, 2))
    rng = np.random.default_rng(7)
    mon = DriftMonitor.from_reference({"a": rng.standard_normal(300), "b": rng.standard_normal(300), "dow_sin": rng.standard_normal(300)}, t)
    assert set(mon.features) == {"a", "b"}  # calendar features are not monitored
    for i in range(70):
        mon.update({"a": float(rng.standard_normal() + 0.3), "b": float(rng.standard_normal())}, f"{i}")
    clone = DriftMonitor.from_dict(json.loads(json.dumps(mon.to_dict())))
    feed = [{"a": float(v + 0.8), "b": float(w)} for v, w in rng.standard_normal((60, 2))]
    out1 = [(f.stream, f.detector, round(f.statistic, 9)) for i, r in enumerate(feed) for f in mon.update(r, f"n{i}")]
    out2 = [(f.stream, f.detector, round(f.statistic, 9)) for i, r in enumerate(feed) for f in clone.update(r, f"n{i}")]
    assert out1 == out2 and out1
    assert [r.statistic for r in mon.readings()] == [r.statistic for r in clone.readings()]


def test_performance_monitor_warmup_detection_and_round_trip():
    pm = PerformanceMonitor(0.5, warmup=60)
    rng = np.random.default_rng(9)

    def outcome(i: int, skill: float) -> RealizedOutcome:
        y = int(rng.random() < 0.5)
        p = 0.5 + (skill if y else -skill) * rng.random()
        return RealizedOutcome(f"d{i}", p, y, 0.01 * (1 if (p >= 0.5) == (y == 1) else -1))

    assert all(pm.update(outcome(i, 0.2)) == [] for i in range(60))
    assert pm.reference is not None
    clone = PerformanceMonitor.from_dict(json.loads(json.dumps(pm.to_dict())))
    found = []
    for i in range(60, 200):
        o = outcome(i, -0.2)  # the model turns wrong
        found += pm.update(o)
        clone.update(o)
        if found:
            break
    assert found and found[0].stream.startswith("perf:")
    with pytest.raises(ValueError, match=">= 20 days"):
        pm.set_reference([0.7] * 5, [1] * 5, [0.0] * 5)


def test_a_restored_performance_monitor_keeps_its_threshold_without_deriving_it(monkeypatch):
    """Restoring runs on the event loop at every start; deriving a threshold takes most of a second:
    the CUSUMs' persisted threshold is the one."""
    import hydra_engine.agent.drift as drift_module

    rng = np.random.default_rng(2)
    pm = PerformanceMonitor(0.5)
    pm.set_reference(rng.random(243) + 0.4, rng.integers(0, 2, 243), rng.standard_normal(243))
    saved = json.loads(json.dumps(pm.to_dict()))

    def derive(*args, **kwargs):
        raise AssertionError("a restore derived its threshold again")

    monkeypatch.setattr(drift_module, "cusum_threshold", derive)
    clone = PerformanceMonitor.from_dict(saved)
    assert clone.h == pm.h and all(c.h == pm.h for c in clone.cusums.values())


def test_a_moving_average_feature_stays_within_its_budget_and_a_real_shift_still_alarms():
    """A 5-day average inside a feature leaves AR(1) innovations that move together for days and
    a heavy-tailed volatility feature breaks the normal CUSUM design: AR(5) whitening, normal scores
    against the reference and the long-run scaling keep both near their budget."""
    from hydra_engine.agent.drift import ar_whitening, long_run_factor

    rng = np.random.default_rng(12)
    n = 24_000

    def sma(a: np.ndarray, k: int) -> np.ndarray:
        return np.convolve(a, np.ones(k) / k, mode="valid")

    price = np.cumsum(rng.standard_normal(n + 40))
    ma_cross = (sma(price, 5)[15:] - sma(price, 20))[:n]  # the moving-average cross of a random walk
    vol = np.sqrt(sma(rng.standard_t(5, n + 40) ** 2, 20))[:n]  # a 20-day volatility of fat-tailed returns
    phi, sd = ar_whitening(ma_cross[:500])
    assert len(phi) == 5 and 0 < sd < 1
    assert long_run_factor(rng.standard_normal(2000)) == pytest.approx(1.0, abs=0.3)
    t = thresholds_for_budget(FalseAlarmBudget.per_feature(0.5, 1), n_reference=500)
    alarms = 0
    for series in (ma_cross, vol):
        for start in range(0, n - 3000, 3000):
            mon = FeatureMonitor.from_reference("x", series[start : start + 500], t)
            alarms += sum(len(mon.update(float(v), str(i))) for i, v in enumerate(series[start + 500 : start + 3000]))
    days = 2 * 7 * 2500
    assert alarms / days * 1000 <= 3 * 0.5, f"{alarms} alarms in {days} in-control days"
    mon = FeatureMonitor.from_reference("x", vol[:500], t)
    shifted = [f for i, v in enumerate(vol[500:800] * 2.0) for f in mon.update(float(v), str(i))]
    assert shifted, "a doubling of the volatility feature is still found"
