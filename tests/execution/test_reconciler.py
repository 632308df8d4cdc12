"""SlippageReconciler: statistics against scipy, verdicts, delayed-data exclusion, real journal."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import math
from pathlib import Path

import aiosqlite
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from hydra_engine.execution.fill_journal import FillJournal, FillRecord
from hydra_engine.execution.reconciler import (
    VERDICT_CALIBRATED,
    VERDICT_INSUFFICIENT,
    VERDICT_OVER,
    VERDICT_UNDER,
    CalibrationThresholds,
    SlippageReconciler,
    analyse,
    average_ranks,
    segment_spearman,
    spearman,
)
from hydra_engine.store.database import open_migrated

T0 = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
TH = CalibrationThresholds(min_fills=30, max_abs_bias_bps=2.0, pessimism_low=0.67, pessimism_high=1.5)


async def open_db(path: Path) -> aiosqlite.Connection:
    return await open_migrated(path)


@pytest.fixture
async def db(tmp_path: Path):
    conn = await open_db(tmp_path / "rec.db")
    yield conn
    await conn.close()


def triples(pred, act, mid) -> np.ndarray:
    return np.column_stack([np.asarray(pred, float), np.asarray(act, float), np.asarray(mid, float)])


finite = st.floats(-5.0, 5.0, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), n=st.integers(3, 60))
def test_statistics_agree_with_scipy(data, n) -> None:
    pred = data.draw(arrays(np.float64, n, elements=finite))
    act = data.draw(arrays(np.float64, n, elements=finite))
    mid = data.draw(arrays(np.float64, n, elements=st.floats(10.0, 500.0, width=32)))
    rep = analyse(triples(pred, act, mid), symbol=None, n_delayed=0, thresholds=TH)
    p = rep.price
    assert rep.n_fills == n
    assert p.mean_predicted == pytest.approx(pred.mean(), abs=1e-9)
    assert p.bias == pytest.approx((pred - act).mean(), abs=1e-9)
    assert p.rmse == pytest.approx(math.sqrt(((pred - act) ** 2).mean()), abs=1e-9)
    if np.ptp(pred) > 1e-6 and np.ptp(act) > 1e-6:
        assert p.pearson == pytest.approx(stats.pearsonr(pred, act)[0], abs=1e-7)
        lr = stats.linregress(pred, act)
        assert p.slope == pytest.approx(lr.slope, rel=1e-6, abs=1e-7)
        assert p.intercept == pytest.approx(lr.intercept, rel=1e-6, abs=1e-7)
    pb, ab = pred / mid * 1e4, act / mid * 1e4
    if len(np.unique(pb)) > 1 and len(np.unique(ab)) > 1:
        assert rep.spearman == pytest.approx(stats.spearmanr(pb, ab)[0], abs=1e-7)
    d = pred - act
    if d.std() > 0:
        lo, hi = stats.t.interval(0.95, n - 1, loc=d.mean(), scale=stats.sem(d))
        assert (p.bias_ci_low, p.bias_ci_high) == (pytest.approx(lo, abs=1e-7), pytest.approx(hi, abs=1e-7))
    assert p.bias_ci_low <= p.bias + 1e-12 <= p.bias_ci_high + 2e-12
    b = rep.bps
    assert b.mean_actual == pytest.approx((act / mid * 1e4).mean(), rel=1e-9, abs=1e-9)
    if p.mean_predicted != 0:
        assert p.pessimism_multiplier == pytest.approx(act.mean() / pred.mean(), rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(x=arrays(np.float64, st.integers(1, 200), elements=st.integers(-5, 5).map(float)))
def test_average_ranks_match_scipy_with_ties(x) -> None:
    assert np.allclose(average_ranks(x), stats.rankdata(x, method="average"))


@settings(max_examples=60, deadline=None)
@given(pred=arrays(np.float64, st.integers(30, 80), elements=st.floats(0.001, 0.2)),
       scale=st.floats(0.2, 3.0))
def test_verdict_follows_the_thresholds(pred, scale) -> None:
    assume(abs(scale - 0.67) > 1e-6 and abs(scale - 1.5) > 1e-6)
    mid = np.full(pred.shape, 70.0)
    rep = analyse(triples(pred, pred * scale, mid), symbol="CL", n_delayed=0, thresholds=TH)
    bias_bps = (pred - pred * scale).mean() / 70.0 * 1e4
    ok = abs(bias_bps) <= 2.0 and 0.67 <= scale <= 1.5
    expected = VERDICT_CALIBRATED if ok else (VERDICT_UNDER if scale > 1 else VERDICT_OVER)
    assert rep.verdict == expected, (rep.verdict, rep.verdict_reason)
    assert rep.pessimism_multiplier == pytest.approx(scale, rel=1e-9)


def test_spearman_parallel_path_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=60_000), 2)  # many ties
    y = x + rng.normal(size=60_000)
    assert spearman(x, y, parallel=True) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), lengths=st.lists(st.integers(0, 40), min_size=1, max_size=5))
def test_segment_spearman_matches_scipy_per_segment(data, lengths) -> None:
    """One sort per column yields the pooled rho and each segment's own (ties included)."""
    n = sum(lengths)
    x = data.draw(arrays(np.float64, n, elements=st.integers(-4, 4).map(float)))
    y = data.draw(arrays(np.float64, n, elements=st.integers(-4, 4).map(float)))
    bounds = [(sum(lengths[:i]), sum(lengths[:i + 1])) for i in range(len(lengths))]
    for parallel in (False, True):
        pooled, parts = segment_spearman(x, y, bounds, parallel=parallel)
        assert len(parts) == len(bounds)
        for (a, b), rho in zip([(0, n), *bounds], [pooled, *parts], strict=True):
            assert rho == pytest.approx(spearman(x[a:b], y[a:b], parallel=False), nan_ok=True, abs=1e-9)
            if b - a >= 2 and np.ptp(x[a:b]) > 0 and np.ptp(y[a:b]) > 0:
                assert rho == pytest.approx(stats.spearmanr(x[a:b], y[a:b])[0], abs=1e-6)


def test_tiny_and_degenerate_inputs() -> None:
    empty = analyse(np.empty((0, 3)), symbol=None, n_delayed=0, thresholds=TH)
    assert empty.n_fills == 0 and empty.verdict == VERDICT_INSUFFICIENT and math.isnan(empty.bias)
    one = analyse(triples([0.1], [0.2], [70.0]), symbol=None, n_delayed=0, thresholds=TH)
    assert one.bias == pytest.approx(-0.1) and math.isnan(one.spearman) and math.isnan(one.bias_ci[0])
    const = analyse(triples([0.1] * 40, [0.1] * 40, [70.0] * 40), symbol=None, n_delayed=0, thresholds=TH)
    assert const.verdict == VERDICT_CALIBRATED and math.isnan(const.pearson) and const.rmse == 0.0
    zero = analyse(triples([0.0] * 40, [0.1] * 40, [70.0] * 40), symbol=None, n_delayed=0, thresholds=TH)
    assert math.isnan(zero.pessimism_multiplier) and zero.verdict == VERDICT_UNDER
    with pytest.raises(ValueError, match="min_fills"):
        CalibrationThresholds(min_fills=1)


async def test_reconcile_from_the_journal_excludes_delayed(db) -> None:
    j = FillJournal(db, group_commit=True)
    rng = np.random.default_rng(3)
    recs = []
    for i in range(120):
        sym = "CL" if i % 3 else "ZC"
        mid = 70.0 if sym == "CL" else 450.0
        pred = float(rng.uniform(0.005, 0.05)) * (1 if sym == "CL" else 6)
        cost = pred * 1.1 + float(rng.normal(0, 0.002))
        recs.append(FillRecord(exec_id=f"e{i}", fill_time=T0 + dt.timedelta(minutes=i), symbol=sym,
                               contract_month="202703", direction="BUY" if i % 2 else "SELL", qty=1,
                               fill_price=mid + cost if i % 2 else mid - cost, arrival_mid=mid,
                               predicted_slippage=pred, data_type="delayed" if i % 10 == 0 else "live"))
    await asyncio.gather(*(j.log_fill(r) for r in recs))
    rec = SlippageReconciler(db, TH)
    live = [r for r in recs if r.data_type == "live"]
    rep = await rec.reconcile()
    assert rep.n_fills == len(live) and rep.n_delayed_excluded == 12
    pred = np.array([r.predicted_slippage for r in live])
    act = np.array([r.actual_slippage for r in live])
    mids = np.array([r.arrival_mid for r in live])
    # the all-markets report's headline figures are the pooled bps line (price units do not pool)
    assert rep.mean_actual == pytest.approx((act / mids * 1e4).mean(), rel=1e-9)
    assert rep.spearman == pytest.approx(stats.spearmanr(pred / mids, act / mids)[0], abs=1e-9)
    assert rep.pessimism_multiplier == pytest.approx((act / mids).mean() / (pred / mids).mean(), rel=1e-9)
    assert math.isnan(rep.price.mean_actual)
    assert sum(m.n_fills for m in rep.markets) == rep.n_fills
    cl = await rec.reconcile("CL")
    assert cl.n_fills == sum(1 for r in live if r.symbol == "CL") and cl.symbol == "CL"
    assert cl.bps.mean_actual == pytest.approx(np.mean([r.actual_slippage_bps for r in live if r.symbol == "CL"]))
    zc = await SlippageReconciler(db, CalibrationThresholds(min_fills=1000)).reconcile("ZC")
    assert zc.verdict == VERDICT_INSUFFICIENT and "min_fills 1000" in zc.verdict_reason
    assert (await rec.reconcile("NOPE")).n_fills == 0


async def test_reconcile_includes_the_unpacked_tail(db) -> None:
    """Fills above the journal's fold mark are not in any block yet: reconcile reads them from
    ``fills`` (with the symbol filter and the delayed exclusion applied there too)."""
    j = FillJournal(db)  # per-fill commits: the last fills stay in the tail
    rng = np.random.default_rng(8)
    recs = []
    for i in range(64 + 21):
        sym = "CL" if i % 2 else "ZC"
        mid = 70.0 if sym == "CL" else 450.0
        pred = float(rng.uniform(0.005, 0.05))
        cost = pred * float(rng.uniform(0.5, 1.5))
        recs.append(FillRecord(exec_id=f"t{i}", fill_time=T0 + dt.timedelta(minutes=i), symbol=sym,
                               contract_month="202703", direction="BUY", qty=1, fill_price=mid + cost,
                               arrival_mid=mid, predicted_slippage=pred,
                               data_type="delayed" if i in (3, 70, 71) else "live"))
    for r in recs:
        assert await j.log_fill(r) is True
    async with db.execute("SELECT folded_through_id FROM fill_slippage_mark") as cur:
        assert (await cur.fetchone())[0] == 64  # 21 fills (two delayed) only in the tail
    rec = SlippageReconciler(db, TH)
    for sym in (None, "CL", "ZC"):
        live = [r for r in recs if r.data_type == "live" and sym in (None, r.symbol)]
        rep = await rec.reconcile(sym)
        assert rep.n_fills == len(live)
        assert rep.n_delayed_excluded == sum(1 for r in recs if r.data_type == "delayed" and sym in (None, r.symbol))
        act = np.array([r.actual_slippage for r in live])
        pred = np.array([r.predicted_slippage for r in live])
        mids = np.array([r.arrival_mid for r in live])
        unit = 1.0 if sym is not None else 1e4 / mids  # the pooled headline is bps
        assert rep.mean_actual == pytest.approx((act * unit).mean(), rel=1e-12)
        assert rep.mean_predicted == pytest.approx((pred * unit).mean(), rel=1e-12)
        for m in rep.markets:
            mine = [r for r in live if r.symbol == m.symbol]
            assert m.n_fills == len(mine)
            assert m.price.mean_actual == pytest.approx(np.mean([r.actual_slippage for r in mine]), rel=1e-12)
        if sym is not None:  # one arrival mid per symbol here: ranks in bps = ranks in price
            assert rep.spearman == pytest.approx(stats.spearmanr(pred, act)[0], abs=1e-9)


async def test_reconcile_without_the_mark_table_names_the_migration(tmp_path: Path) -> None:
    conn = await aiosqlite.connect(tmp_path / "old.db")
    try:
        for name in ("v001_core", "v002_fills"):
            await conn.executescript(importlib.import_module(f"hydra_engine.store.migrations.{name}").SQL)
        with pytest.raises(RuntimeError, match="v005_fill_perf"):
            await SlippageReconciler(conn).reconcile()
    finally:
        await conn.close()


def _two_scale_fills(n: int = 90) -> list[FillRecord]:
    """CL quoted in dollars (mid 70) costs 7.4x its prediction; ZO quoted in cents (mid 350) costs
    0.55x. In price units ZO's cents dominate, so the pooled price-unit multiplier is ~0.70 (inside
    the calibrated band) and hides CL's 7x underestimate."""
    rng = np.random.default_rng(21)
    recs = []
    for i in range(2 * n):
        sym, mid, pred, ratio = ("CL", 70.0, 0.01, 7.4) if i % 2 else ("ZO", 350.0, 0.4467, 0.55)
        p = pred * float(rng.uniform(0.8, 1.2))
        cost = p * ratio * float(rng.uniform(0.97, 1.03))
        recs.append(FillRecord(exec_id=f"s{i}", fill_time=T0 + dt.timedelta(minutes=i), symbol=sym,
                               contract_month="202703", direction="BUY", qty=1, fill_price=mid + cost,
                               arrival_mid=mid, predicted_slippage=p, data_type="delayed" if i == 7 else "live"))
    return recs


async def test_pooled_report_is_per_market_in_bps_and_does_not_hide_an_underestimate(db) -> None:
    recs = _two_scale_fills()
    j = FillJournal(db, group_commit=True)
    await asyncio.gather(*(j.log_fill(r) for r in recs))
    live = [r for r in recs if r.data_type == "live"]
    price_mult = sum(r.actual_slippage for r in live) / sum(r.predicted_slippage for r in live)
    assert 0.67 < price_mult < 0.75  # the old pooled figure: looks calibrated

    rep = await SlippageReconciler(db, TH).reconcile()
    assert rep.is_pooled and rep.symbol is None
    assert [m.symbol for m in rep.markets] == ["CL", "ZO"]
    cl, zo = rep.market("CL"), rep.market("ZO")
    assert cl.verdict == VERDICT_UNDER and cl.pessimism_multiplier == pytest.approx(7.4, rel=0.03)
    assert zo.verdict == VERDICT_OVER and zo.pessimism_multiplier == pytest.approx(0.55, rel=0.03)
    assert cl.n_fills + zo.n_fills == rep.n_fills == len(live)
    assert cl.n_delayed_excluded + zo.n_delayed_excluded == rep.n_delayed_excluded == 1
    cl_live = [r for r in live if r.symbol == "CL"]
    assert cl.price.mean_actual == pytest.approx(np.mean([r.actual_slippage for r in cl_live]), rel=1e-12)
    assert cl.bps.mean_actual == pytest.approx(np.mean([r.actual_slippage_bps for r in cl_live]), rel=1e-12)
    # the pooled line is bps only, and its verdict cannot be calibrated while one market is not
    assert rep.verdict == VERDICT_UNDER and "CL" in rep.verdict_reason
    assert all(math.isnan(v) for v in (rep.price.bias, rep.price.pessimism_multiplier, rep.price.mean_actual))
    act_bps = np.array([r.actual_slippage_bps for r in live])
    pred_bps = np.array([r.predicted_slippage / r.arrival_mid * 1e4 for r in live])
    assert rep.pessimism_multiplier == pytest.approx(act_bps.mean() / pred_bps.mean(), rel=1e-9)
    assert rep.bias == pytest.approx((pred_bps - act_bps).mean(), rel=1e-9)
    assert rep.pooled is not None and rep.pooled.n_markets == 2
    assert rep.pooled.spearman == pytest.approx(stats.spearmanr(pred_bps, act_bps)[0], abs=1e-9)
    # a single-market report keeps its price-unit headline figures
    one = await SlippageReconciler(db, TH).reconcile("CL")
    assert not one.is_pooled and one.markets == (cl,)
    assert one.pessimism_multiplier == pytest.approx(cl.price.pessimism_multiplier, rel=1e-12)
    assert one.verdict == VERDICT_UNDER


async def test_pooled_report_of_an_empty_or_delayed_only_journal(db) -> None:
    rec = SlippageReconciler(db, TH)
    empty = await rec.reconcile()
    assert empty.is_pooled and empty.markets == () and empty.n_fills == 0
    assert empty.verdict == VERDICT_INSUFFICIENT and math.isnan(empty.pessimism_multiplier)
    j = FillJournal(db)
    for i in range(3):  # a market seen only on delayed data has a line, with nothing to judge
        await j.log_fill(FillRecord(exec_id=f"d{i}", fill_time=T0 + dt.timedelta(minutes=i), symbol="HO",
                                    contract_month="202703", direction="BUY", qty=1, fill_price=2.41,
                                    arrival_mid=2.4, predicted_slippage=0.001, data_type="delayed"))
    rep = await rec.reconcile()
    (ho,) = rep.markets
    assert (ho.symbol, ho.n_fills, ho.n_delayed_excluded, ho.verdict) == ("HO", 0, 3, VERDICT_INSUFFICIENT)
    assert rep.verdict == VERDICT_INSUFFICIENT and rep.n_delayed_excluded == 3
