"""Metrics: known values, agreement with scikit-learn, and no surprises on degenerate series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from hydra_engine.model import metrics as m


def test_hit_rate_counts_matches() -> None:
    assert m.hit_rate([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5


def test_log_loss_and_brier_agree_with_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = rng.uniform(0.05, 0.95, 200)
    assert m.log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-12)
    assert m.brier(y, p) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert m.log_losses(y, p).mean() == pytest.approx(m.log_loss(y, p))


def test_coin_flip_reference_values() -> None:
    assert m.log_loss([0, 1], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert m.brier([0, 1], [0.5, 0.5]) == pytest.approx(0.25)


def test_certain_wrong_forecast_is_finite() -> None:
    assert math.isfinite(m.log_loss([1], [0.0]))


def test_sharpe_and_sortino_known_values() -> None:
    r = np.array([0.01, -0.005, 0.02, 0.0])
    assert m.sharpe(r, 252) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    downside = math.sqrt((0.005**2) / 4)
    assert m.sortino(r, 252) == pytest.approx(r.mean() / downside * math.sqrt(252))


@pytest.mark.parametrize("value", [0.0, 0.01, -0.02])
def test_constant_series_are_zero_not_inf_or_nan(value: float) -> None:
    r = np.full(50, value)
    assert m.sharpe(r) == 0.0
    assert m.turnover(np.ones(50), initial_position=1.0) == 0.0
    s = m.sortino(r)
    assert math.isfinite(s)
    if value >= 0:
        assert s == 0.0
    assert math.isfinite(m.max_drawdown(r))


def test_single_value_sharpe_is_zero() -> None:
    assert m.sharpe([0.03]) == 0.0


def test_max_drawdown_compounds_from_first_peak() -> None:
    assert m.max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(0.5)
    assert m.max_drawdown([-0.1]) == pytest.approx(0.1)
    assert m.max_drawdown([0.01, 0.02]) == 0.0
    assert m.max_drawdown([-2.0]) == pytest.approx(1.0)


def test_turnover_counts_flip_as_two() -> None:
    assert m.turnover([1, -1, -1, 0]) == pytest.approx((1 + 2 + 0 + 1) / 4)


def test_empty_input_is_nan() -> None:
    for value in (m.hit_rate([], []), m.log_loss([], []), m.brier([], []), m.sharpe([]), m.sortino([]),
                  m.max_drawdown([]), m.turnover([])):
        assert math.isnan(value)


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        m.brier([0, 1], [0.5])
    with pytest.raises(ValueError, match=r"y_true: labels must be 0 or 1.*position 1"):
        m.log_loss([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"p_up: probabilities must lie in \[0, 1\]"):
        m.brier([0], [1.5])
    with pytest.raises(ValueError, match="returns: non-finite value at position 2"):
        m.sharpe([0.1, 0.2, float("nan")])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=1, max_size=80))
def test_ratios_always_finite(returns: list[float]) -> None:
    for value in (m.sharpe(returns), m.sortino(returns), m.max_drawdown(returns), m.turnover(np.sign(returns))):
        assert math.isfinite(value)
    assert 0.0 <= m.max_drawdown(returns) <= 1.0
