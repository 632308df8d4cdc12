"""Purged, embargoed walk-forward: no training row in a gap, costs charged, per-day records complete."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from model_testdata import synthetic_bars

from hydra_engine.model.baseline import BaselineModel, ModelError, ModelSpec
from hydra_engine.model.features import (
    InsufficientHistoryError,
    build_features,
    make_labels,
    tradable_returns,
)
from hydra_engine.model.walk_forward import (
    PurgedWalkForward,
    positions_from_proba,
    realized_signal_pnl,
    signal_pnl,
    walk_forward_evaluate,
)


def assert_clean_folds(splitter: PurgedWalkForward, n: int) -> None:
    """Fails if any training row lies in a purge or embargo gap, or at/after its test window."""
    folds = splitter.folds(n)
    assert len(folds) == splitter.n_splits
    assert folds[-1].test[1] == n
    for prev, nxt in zip(folds, folds[1:], strict=False):
        assert prev.test[1] == nxt.test[0]
    for fold, (train_idx, test_idx) in zip(folds, splitter.split(n), strict=True):
        test_start = int(test_idx[0])
        purge_gap = set(range(test_start - splitter.purge, test_start))
        embargo_gap = set(range(test_start - splitter.purge - splitter.embargo, test_start - splitter.purge))
        train = set(train_idx.tolist())
        assert not train & purge_gap, f"fold {fold.index}: training rows in purge gap"
        assert not train & embargo_gap, f"fold {fold.index}: training rows in embargo gap"
        assert train_idx.max() < test_start - splitter.purge - splitter.embargo
        assert len(train_idx) >= splitter.min_train
        if splitter.train_window is not None:
            assert len(train_idx) <= splitter.train_window
        assert fold.purge == (test_start - splitter.purge, test_start)


def test_fold_layout_example() -> None:
    s = PurgedWalkForward(n_splits=2, train_window=10, test_window=5, purge=2, embargo=3)
    folds = s.folds(30)
    assert [f.test for f in folds] == [(20, 25), (25, 30)]
    assert [f.train for f in folds] == [(5, 15), (10, 20)]
    assert folds[0].embargo == (15, 18) and folds[0].purge == (18, 20)
    assert_clean_folds(s, 30)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(20, 400),
    n_splits=st.integers(1, 6),
    train_window=st.one_of(st.none(), st.integers(5, 150)),
    test_window=st.one_of(st.none(), st.integers(1, 40)),
    purge=st.integers(0, 10),
    embargo=st.integers(0, 10),
)
def test_no_training_row_in_any_gap(n, n_splits, train_window, test_window, purge, embargo) -> None:
    s = PurgedWalkForward(n_splits, train_window, test_window, purge, embargo)
    try:
        s.folds(n)
    except InsufficientHistoryError:
        assume(False)
    assert_clean_folds(s, n)


def test_gap_checker_catches_a_leaky_splitter() -> None:
    class Leaky(PurgedWalkForward):
        def split(self, data):
            for train, test in super().split(data):
                yield np.append(train, test[0] - 1), test

    with pytest.raises(AssertionError, match="purge gap"):
        assert_clean_folds(Leaky(2, 10, 5, 2, 3), 30)


def test_too_short_history_says_what_is_needed() -> None:
    with pytest.raises(InsufficientHistoryError, match=r"50 rows, need at least 65 .*min_train 20 \+ purge 2 \+ embargo 3 \+ 4 splits x test_window 10"):
        PurgedWalkForward(4, 20, 10, 2, 3).folds(50)
    with pytest.raises(ModelError, match="PurgedWalkForward.purge: must be an integer >= 0"):
        PurgedWalkForward(4, 20, 10, -1, 3)


@pytest.fixture(scope="module")
def dataset():
    b = synthetic_bars(700, edge=0.8, seed=11)
    return build_features(b), make_labels(b), tradable_returns(b)


SPEC = ModelSpec("logistic", train_window_days=250)


def test_evaluate_records_every_oos_day(dataset) -> None:
    f, y, r = dataset
    res = walk_forward_evaluate(SPEC, f, y, r, cost_bps=2.0, n_splits=4, test_window=50, embargo=5)
    oos = res.oos
    assert len(oos) == 200 and oos.index.is_monotonic_increasing and not oos.index.has_duplicates
    assert list(oos["fold"].unique()) == [0, 1, 2, 3]
    assert len(res.windows) == 4 and all(w.metrics.n_days == 50 for w in res.windows)
    assert oos.index[-1] == f.index.intersection(y.index).intersection(r.index)[-1]
    np.testing.assert_allclose(oos["net_return"], oos["position"] * oos["ret"] - oos["cost"])
    changes = np.abs(np.diff(np.concatenate(([0.0], oos["position"].to_numpy()))))
    np.testing.assert_allclose(oos["cost"], changes * 2.0 / 1e4)
    assert res.overall.log_loss == pytest.approx(oos["log_loss"].mean())
    assert res.overall.hit_rate == pytest.approx(oos["hit"].mean())
    assert res.losses("brier").equals(oos["brier"])
    for w in res.windows:
        assert pd.Timestamp(w.train_end) < pd.Timestamp(w.test_start)
        assert w.n_train == 250
    summary = res.summary()
    assert summary["purge"] == 1 and summary["embargo"] == 5 and len(summary["windows"]) == 4


def test_planted_edge_beats_coin_and_costs_reduce_returns(dataset) -> None:
    f, y, r = dataset
    free = walk_forward_evaluate(SPEC, f, y, r, 0.0, n_splits=4, test_window=80)
    costly = walk_forward_evaluate(SPEC, f, y, r, 25.0, n_splits=4, test_window=80)
    assert free.overall.hit_rate > 0.6
    assert free.overall.sharpe > costly.overall.sharpe
    assert costly.overall.cost_total > 0 and free.overall.cost_total == 0


def test_cost_callable_receives_each_oos_date(dataset) -> None:
    f, y, r = dataset
    seen: list[pd.Timestamp] = []

    def cost(day: pd.Timestamp) -> float:
        seen.append(day)
        return 5.0 if day.day_of_week == 0 else 1.0

    res = walk_forward_evaluate(SPEC, f, y, r, cost, n_splits=2, test_window=40)
    assert seen == list(res.oos.index)
    mondays = res.oos.index.day_of_week == 0
    changed = res.oos["cost"] > 0
    assert np.allclose(res.oos.loc[mondays & changed, "cost"] % (5.0 / 1e4), 0.0, atol=1e-12)


def test_random_labels_show_no_skill(dataset) -> None:
    f, _, r = dataset
    rng = np.random.default_rng(5)
    noise = pd.Series(rng.integers(0, 2, len(f)), index=f.index)
    res = walk_forward_evaluate(SPEC, f, noise, r, n_splits=4, test_window=100)
    assert 0.4 < res.overall.hit_rate < 0.6


def test_purge_shorter_than_label_horizon_is_refused(dataset) -> None:
    f, y, r = dataset
    with pytest.raises(ModelError, match="purge: 2 is shorter than the label horizon 5"):
        walk_forward_evaluate(SPEC, f, y, r, purge=2, label_horizon=5)


def test_short_history_is_clear(dataset) -> None:
    f, y, r = dataset
    with pytest.raises(InsufficientHistoryError, match="walk-forward: 200 rows, need at least"):
        walk_forward_evaluate(SPEC, f.iloc[:200], y, r, n_splits=4, test_window=50)
    res = walk_forward_evaluate(SPEC, f.iloc[:200], y, r, n_splits=2, test_window=50, min_train=90)
    assert res.windows[0].n_train == 99


def test_cost_series_used_as_of_each_date(dataset) -> None:
    f, y, r = dataset
    base = walk_forward_evaluate(SPEC, f, y, r, 0.0, n_splits=2, test_window=40)
    oos_start = base.oos.index[0]
    weekly = pd.Series(3.0, index=pd.date_range(oos_start - pd.Timedelta(days=10), base.oos.index[-1], freq="7D"))
    res = walk_forward_evaluate(SPEC, f, y, r, weekly, n_splits=2, test_window=40)
    changes = np.abs(np.diff(np.concatenate(([0.0], res.oos["position"].to_numpy()))))
    np.testing.assert_allclose(res.oos["cost"], changes * 3.0 / 1e4)
    late = pd.Series(3.0, index=[base.oos.index[5]])
    with pytest.raises(ModelError, match="cost series has no value on or before"):
        walk_forward_evaluate(SPEC, f, y, r, late, n_splits=2, test_window=40)


def test_pnl_is_on_the_tradable_return_net_of_cost_paid_only_on_changes() -> None:
    """A constant-long model earns open[D+2]/open[D+1]-1 each day and pays cost once, on entry."""
    b = synthetic_bars(500, seed=3)
    f, r = build_features(b), tradable_returns(b)
    rng = np.random.default_rng(0)
    mostly_up = pd.Series((rng.random(len(r)) < 0.9).astype(int), index=r.index)
    spec = ModelSpec("logistic", {"C": 1e-4}, features=("ret_1", "vol_20"), train_window_days=200)
    res = walk_forward_evaluate(spec, f, mostly_up, r, cost_bps=10.0, n_splits=3, test_window=50)
    oos = res.oos
    assert (oos["position"] == 1.0).all()
    o = b["open"]
    pos_of = {d: i for i, d in enumerate(b.index)}
    expected = [o.iloc[pos_of[d] + 2] / o.iloc[pos_of[d] + 1] - 1 for d in oos.index]
    np.testing.assert_allclose(oos["ret"], expected)
    close_to_close = b["close"].pct_change().shift(-1).loc[oos.index]
    assert not np.allclose(oos["ret"], close_to_close)
    np.testing.assert_allclose(oos["gross_return"], oos["ret"])
    assert oos["cost"].iloc[0] == pytest.approx(10.0 / 1e4) and (oos["cost"].iloc[1:] == 0.0).all()
    np.testing.assert_allclose(oos["net_return"], oos["ret"] - oos["cost"])
    assert res.overall.cost_total == pytest.approx(10.0 / 1e4)
    assert res.overall.turnover == pytest.approx(1.0 / len(oos))


def test_signal_pnl_is_one_rule_for_any_position_series() -> None:
    dates = pd.bdate_range("2024-01-01", periods=5)
    pnl = signal_pnl(np.array([1.0, 1.0, -1.0, -1.0, 0.0]), np.array([0.01, -0.02, 0.03, 0.0, 0.05]), dates, 20.0, initial_position=1.0)
    np.testing.assert_allclose(pnl.gross, [0.01, -0.02, -0.03, 0.0, 0.0])
    np.testing.assert_allclose(pnl.cost, [0.0, 0.0, 2 * 20e-4, 0.0, 20e-4])
    np.testing.assert_allclose(pnl.net, pnl.gross - pnl.cost)
    with pytest.raises(ModelError, match="signal_pnl: positions"):
        signal_pnl(np.ones(3), np.ones(2), dates[:3])


def test_realized_signal_pnl_carries_the_previous_position(dataset) -> None:
    """The monitor's daily P&L: a model long yesterday and today pays nothing to stay long."""
    f, y, r = dataset
    model = BaselineModel(SPEC).fit(f.iloc[:300], y)
    dates = f.index.intersection(r.index)[400:460]
    pnl = realized_signal_pnl(model, f, r, dates, cost_bps=7.0)
    pos_all = positions_from_proba(model.predict_proba(f.loc[f.index[f.index < dates[0]][-1:].append(dates)]))
    changes = np.abs(np.diff(pos_all))
    np.testing.assert_allclose(pnl.cost, changes * 7.0 / 1e4)
    np.testing.assert_allclose(pnl.net, pos_all[1:] * r.loc[dates].to_numpy() - pnl.cost)
    assert realized_signal_pnl(model, f, r, dates[:0]).net.size == 0
