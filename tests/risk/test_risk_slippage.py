"""estimate_slippage: the square-root model, its units, and refusing bad input."""

from __future__ import annotations

import asyncio
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


def test_each_market_uses_its_own_multiplier() -> None:
    """The calibration is keyed by market: CL's 7.4 never leaks into ZO (0.55), an unknown market
    keeps 1.0, and the raw prediction (what the journal stores and the reconciler judges) is unchanged."""
    from hydra_engine.risk.slippage import SlippageCalibration, SlippageModel

    cal = SlippageCalibration.of({"CL": 7.4, "ZO": 0.55})
    assert (cal.multiplier("CL"), cal.multiplier("ZO"), cal.multiplier("HO")) == (7.4, 0.55, 1.0)
    model = SlippageModel(calibration=cal)
    kw = dict(spread=0.02, daily_sigma=1.4, qty=25, adv=10_000, mid_price=70.0)
    raw = estimate_slippage(**kw)
    cl, zo, ho = (model.estimate(s, **kw) for s in ("CL", "ZO", "HO"))
    assert cl.price == zo.price == ho.price == pytest.approx(raw.price)
    assert cl.expected_price == pytest.approx(raw.price * 7.4) and cl.expected_bps == pytest.approx(raw.bps * 7.4)
    assert zo.expected_price == pytest.approx(raw.price * 0.55) and ho.expected_price == pytest.approx(raw.price)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="multiplier"):
            SlippageCalibration.of({"CL": bad})


async def test_calibration_from_a_pooled_reconciliation_is_per_market(tmp_path) -> None:
    import datetime as dt

    from hydra_engine.execution.fill_journal import FillJournal, FillRecord
    from hydra_engine.execution.reconciler import (
        CalibrationThresholds,
        SlippageReconciler,
    )
    from hydra_engine.risk.slippage import SlippageCalibration
    from hydra_engine.store.database import open_migrated

    db = await open_migrated(tmp_path / "cal.db")
    try:
        t0 = dt.datetime(2026, 11, 23, 15, tzinfo=dt.UTC)
        j = FillJournal(db, group_commit=True)
        recs = []
        for i in range(120):  # CL 40 fills at 7.4x, ZO 80 fills at 0.55x; HO 5 fills: too few
            sym, mid, pred, ratio = ("CL", 70.0, 0.01, 7.4) if i % 3 == 0 else ("ZO", 350.0, 0.45, 0.55)
            recs.append(FillRecord(exec_id=f"c{i}", fill_time=t0 + dt.timedelta(minutes=i), symbol=sym,
                                   contract_month="202703", direction="SELL", qty=1,
                                   fill_price=mid - pred * ratio * (1 + 0.01 * (i % 5)), arrival_mid=mid,
                                   predicted_slippage=pred, data_type="live"))
        recs += [FillRecord(exec_id=f"h{i}", fill_time=t0 + dt.timedelta(hours=5, minutes=i), symbol="HO",
                            contract_month="202703", direction="BUY", qty=1, fill_price=2.41, arrival_mid=2.4,
                            predicted_slippage=0.001, data_type="live") for i in range(5)]
        await asyncio.gather(*(j.log_fill(r) for r in recs))
        rep = await SlippageReconciler(db, CalibrationThresholds(min_fills=30)).reconcile()
        cal = SlippageCalibration.from_report(rep)
        assert cal.multiplier("CL") == pytest.approx(7.4 * 1.02, rel=0.01)
        assert cal.multiplier("ZO") == pytest.approx(0.55 * 1.02, rel=0.01)
        assert cal.multiplier("HO") == 1.0 and "HO" not in cal.multipliers  # insufficient data: unchanged
    finally:
        await db.close()
