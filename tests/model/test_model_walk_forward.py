"""Purged, embargoed walk-forward: no training row in a gap, costs charged, per-day records complete."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_testdata import synthetic_bars
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hydra_engine.model.baseline import ModelError, ModelSpec
from hydra_engine.model.features import InsufficientHistoryError, build_features, make_forward_returns, make_labels
from hydra_engine.model.walk_forward import PurgedWalkForward, walk_forward_evaluate


def assert_clean_folds(splitter: PurgedWalkForward, n: int) -> None:
    """Fails if any training row lies in a purge or embargo gap, or at/after its test window."""
    folds = splitter.folds(n)
    assert len(folds) == splitter.n_splits
    assert folds[-1].test[1] == n
    for prev, nxt in zip(folds, folds[1:]):
        assert prev.test[1] == nxt.test[0]
    for fold, (train_idx, test_idx) in zip(folds, splitter.split(n)):
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
    return build_features(b), make_labels(b), make_forward_returns(b)


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
