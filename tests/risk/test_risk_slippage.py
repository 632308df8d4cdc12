"""estimate_slippage: the square-root model, its units, and refusing bad input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_engine.risk.slippage import actual_slippage, estimate_slippage, to_bps

pos = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
nonneg = st.floats(min_value=0.0, max_value=1e3, allow_nan=False, allow_infinity=False)


def test_worked_example_in_price_units_and_bps() -> None:
    # CL at 70.00, spread 0.02, daily sigma 1.40, 25 lots vs ADV 10,000, Y = 0.1
    est = estimate_slippage(spread=0.02, daily_sigma=1.4, qty=25, adv=10_000, mid_price=70.0, impact_coeff=0.1)
    assert est.half_spread == pytest.approx(0.01)
    assert est.impact == pytest.approx(0.1 * 1.4 * math.sqrt(25 / 10_000))  # 0.007
    assert est.price == pytest.approx(0.017)
    assert est.bps == pytest.approx(0.017 / 70.0 * 1e4)
    assert est.participation == pytest.approx(0.0025)


@settings(max_examples=200, deadline=None)
@given(spread=nonneg, sigma=nonneg, qty=nonneg, adv=pos, mid=pos, y=st.floats(0, 2))
def test_slippage_is_at_least_half_spread_and_bps_consistent(spread, sigma, qty, adv, mid, y) -> None:
    est = estimate_slippage(spread=spread, daily_sigma=sigma, qty=qty, adv=adv, mid_price=mid, impact_coeff=y)
    assert est.price >= spread / 2 - 1e-12
    assert est.price == pytest.approx(est.half_spread + est.impact)
    assert est.bps == pytest.approx(est.price / mid * 1e4, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(spread=nonneg, sigma=nonneg, q1=nonneg, q2=nonneg, adv=pos, mid=pos)
def test_slippage_grows_with_size_and_shrinks_with_adv(spread, sigma, q1, q2, adv, mid) -> None:
    lo, hi = sorted((q1, q2))
    a = estimate_slippage(spread=spread, daily_sigma=sigma, qty=lo, adv=adv, mid_price=mid)
    b = estimate_slippage(spread=spread, daily_sigma=sigma, qty=hi, adv=adv, mid_price=mid)
    assert b.price >= a.price - 1e-12
    c = estimate_slippage(spread=spread, daily_sigma=sigma, qty=hi, adv=adv * 4, mid_price=mid)
    assert c.impact == pytest.approx(b.impact / 2, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("spread", float("nan"), "spread=nan must be finite"),
        ("spread", -0.01, "spread=-0.01 must be >= 0"),
        ("daily_sigma", float("inf"), "daily_sigma=inf must be finite"),
        ("qty", -1, "qty=-1 must be >= 0"),
        ("adv", 0, "adv=0 must be > 0"),
        ("adv", -5.0, "adv=-5.0 must be > 0"),
        ("mid_price", 0.0, "mid_price=0.0 must be > 0"),
        ("mid_price", float("nan"), "mid_price=nan must be finite"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(field: str, value: float, match: str) -> None:
    kw = dict(spread=0.02, daily_sigma=1.0, qty=1, adv=1000.0, mid_price=70.0)
    kw[field] = value
    with pytest.raises(ValueError, match=match.replace("+", r"\+")):
        estimate_slippage(**kw)


def test_non_numbers_are_type_errors() -> None:
    with pytest.raises(TypeError, match="qty"):
        estimate_slippage(spread=0.02, daily_sigma=1.0, qty="3", adv=1000.0, mid_price=70.0)  # type: ignore[arg-type]


def test_actual_slippage_sign_convention() -> None:
    assert actual_slippage("BUY", 70.05, 70.00) == pytest.approx(0.05)  # paid up: cost
    assert actual_slippage("SELL", 69.95, 70.00) == pytest.approx(0.05)  # sold below: cost
    assert actual_slippage("BUY", 69.99, 70.00) == pytest.approx(-0.01)  # improvement
    with pytest.raises(ValueError, match="direction"):
        actual_slippage("HOLD", 1.0, 1.0)
    assert to_bps(0.07, 70.0) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="mid_price"):
        to_bps(0.1, 0.0)
