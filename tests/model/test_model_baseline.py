"""BaselineModel: the three families fit and predict, hashes are stable, files round-trip, errors are clear."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_testdata import synthetic_bars

from hydra_engine.model.baseline import (
    MIN_TRAIN_ROWS,
    BaselineModel,
    ModelError,
    ModelSpec,
)
from hydra_engine.model.features import (
    FeatureError,
    InsufficientHistoryError,
    build_features,
    make_labels,
)

FAST = {
    "logistic": {},
    "hist_gb": {"max_iter": 30},
    "random_forest": {"n_estimators": 30},
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    b = synthetic_bars(360, edge=0.4)
    return build_features(b), make_labels(b)


@pytest.mark.parametrize("family", sorted(FAST))
@pytest.mark.parametrize("calibrate", [None, "sigmoid", "isotonic"])
def test_families_fit_and_predict(data, family: str, calibrate: str | None) -> None:
    f, y = data
    model = BaselineModel(ModelSpec(family, FAST[family], train_window_days=250, calibrate=calibrate)).fit(f, y)
    p = model.predict_proba(f.iloc[-20:])
    assert p.shape == (20,)
    assert ((p >= 0) & (p <= 1)).all()
    assert set(model.predict(f.iloc[-20:])) <= {0, 1}
    assert (model.predict(f.iloc[-20:]) == (p > 0.5)).all()
    assert model.n_train == 250
    common = f.index.intersection(y.index)
    assert model.train_end == str(common[-1]) and model.train_start == str(common[-250])
    if calibrate == "isotonic":
        assert p.min() >= 0.02 and p.max() <= 0.98


def test_planted_edge_is_learned(data) -> None:
    f, y = data
    model = BaselineModel(ModelSpec("logistic", train_window_days=300)).fit(f, y)
    common = f.index.intersection(y.index)
    in_sample = (model.predict(f.loc[common]) == y.loc[common]).mean()
    assert in_sample > 0.55


def test_content_hash_is_deterministic_and_sensitive(data) -> None:
    f, y = data
    spec = ModelSpec("random_forest", FAST["random_forest"], train_window_days=200)
    a, b = BaselineModel(spec).fit(f, y), BaselineModel(spec).fit(f, y)
    assert a.content_hash() == b.content_hash()
    assert len(a.content_hash()) == 64
    np.testing.assert_array_equal(a.predict_proba(f), b.predict_proba(f))
    other_data = BaselineModel(spec).fit(f.iloc[:-5], y)
    other_spec = BaselineModel(ModelSpec("random_forest", {"n_estimators": 31}, train_window_days=200)).fit(f, y)
    assert len({a.content_hash(), other_data.content_hash(), other_spec.content_hash()}) == 3
    explicit_default = ModelSpec("logistic", {"C": 0.1}, train_window_days=200)
    implicit_default = ModelSpec("logistic", train_window_days=200)
    assert BaselineModel(explicit_default).fit(f, y).content_hash() == BaselineModel(implicit_default).fit(f, y).content_hash()


def test_save_load_round_trip(tmp_path: Path, data) -> None:
    f, y = data
    model = BaselineModel(ModelSpec("hist_gb", FAST["hist_gb"], train_window_days=200, calibrate="sigmoid")).fit(f, y)
    model.save(tmp_path / "m")
    loaded = BaselineModel.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(f), model.predict_proba(f))
    assert loaded.content_hash() == model.content_hash()
    assert loaded.spec == model.spec
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["spec"]["family"] == "hist_gb" and meta["n_train"] == 200


def test_tampered_or_missing_files_refused(tmp_path: Path, data) -> None:
    f, y = data
    BaselineModel(ModelSpec("logistic", train_window_days=100)).fit(f, y).save(tmp_path / "m")
    blob = (tmp_path / "m" / "model.pkl").read_bytes()
    (tmp_path / "m" / "model.pkl").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ModelError, match="SHA-256 does not match"):
        BaselineModel.load(tmp_path / "m")
    with pytest.raises(ModelError, match="not a saved model"):
        BaselineModel.load(tmp_path / "empty")


def test_nan_feature_is_named(data) -> None:
    f, y = data
    broken = f.copy()
    broken.iloc[100, broken.columns.get_loc("vol_20")] = np.nan
    model = BaselineModel(ModelSpec("logistic", train_window_days=300))
    with pytest.raises(FeatureError, match=r"fit: feature 'vol_20' is NaN/inf at .* \(row 100\)"):
        model.fit(broken, y)
    model.fit(f, y)
    with pytest.raises(FeatureError, match=r"predict_proba: feature 'vol_20' is NaN/inf"):
        model.predict_proba(broken.iloc[[100]])


def test_too_little_history_and_one_class(data) -> None:
    f, y = data
    with pytest.raises(InsufficientHistoryError, match=rf"need at least {MIN_TRAIN_ROWS}"):
        BaselineModel(ModelSpec("logistic", train_window_days=100)).fit(f.iloc[:30], y)
    ones = pd.Series(1, index=y.index)
    with pytest.raises(InsufficientHistoryError, match="need both classes"):
        BaselineModel(ModelSpec("logistic", train_window_days=100)).fit(f, ones)


def test_missing_feature_column_and_unfitted(data) -> None:
    f, y = data
    model = BaselineModel(ModelSpec("logistic", features=("ret_1", "ext_cot"), train_window_days=100))
    with pytest.raises(FeatureError, match=r"feature column\(s\) \['ext_cot'\] missing"):
        model.fit(f, y)
    with pytest.raises(ModelError, match="not fitted"):
        model.predict_proba(f)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"family": "xgboost"}, r"spec.family: 'xgboost' is not one of"),
        ({"family": "logistic", "hyperparams": {"depth": 3}}, r"spec.hyperparams: \['depth'\] not accepted by logistic"),
        ({"family": "logistic", "train_window_days": 10}, r"spec.train_window_days: must be an integer >= 60"),
        ({"family": "logistic", "calibrate": "platt"}, r"spec.calibrate: 'platt' is not one of"),
        ({"family": "logistic", "features": ()}, r"spec.features: need a non-empty list"),
    ],
)
def test_bad_spec_names_the_field(kwargs: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        ModelSpec(**kwargs)


def test_spec_round_trips_through_json() -> None:
    spec = ModelSpec("hist_gb", {"max_depth": 2}, ("ret_1", "vol_20"), 300, "isotonic")
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    with pytest.raises(ModelError, match=r"unknown key\(s\) \['colour'\]"):
        ModelSpec.from_dict(spec.to_dict() | {"colour": "red"})


def test_out_of_range_hyperparameter_fails_at_spec_time() -> None:
    with pytest.raises(ModelError, match=r"spec.hyperparams \(logistic\): The 'C' parameter"):
        ModelSpec("logistic", {"C": -1.0})
    with pytest.raises(ModelError, match=r"spec.hyperparams \(random_forest\): The 'max_depth' parameter"):
        ModelSpec("random_forest", {"max_depth": 0})


def test_specs_are_hashable_by_value() -> None:
    a = ModelSpec("hist_gb", {"max_depth": 2, "learning_rate": 0.1})
    b = ModelSpec("hist_gb", {"learning_rate": 0.1, "max_depth": 2})
    assert a == b and hash(a) == hash(b) and len({a, b, ModelSpec("hist_gb")}) == 2


def test_train_since_forgets_the_rows_before_it_once_enough_follow(data) -> None:
    x, y = data
    idx = x.index.intersection(y.index)
    since = idx[-100]
    plain = BaselineModel(ModelSpec("logistic", train_window_days=250)).fit(x, y)
    after = BaselineModel(ModelSpec("logistic", train_window_days=250, train_since=str(since.date()))).fit(x, y)
    assert plain.n_train == 250 and after.n_train == 100 and after.train_start == str(since)
    few = BaselineModel(ModelSpec("logistic", train_window_days=250, train_since=str(idx[-20].date()))).fit(x, y)
    assert few.n_train == MIN_TRAIN_ROWS  # too few since: the newest MIN_TRAIN_ROWS rows
    # a fit made before the date (an early walk-forward fold) is the plain recipe
    early = BaselineModel(ModelSpec("logistic", train_window_days=150, train_since=str(idx[-100].date()))).fit(x.loc[: idx[-150]], y.loc[: idx[-150]])
    assert early.n_train == 150
    spec = ModelSpec("logistic", train_since="2020-03-05T00:00:00")
    assert spec.train_since == "2020-03-05" and ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert "train_since" not in ModelSpec("logistic").to_dict()  # older specs keep their keys and hashes
    with pytest.raises(ModelError, match="train_since"):
        ModelSpec("logistic", train_since="yesterday")


def test_a_linear_model_does_not_extrapolate_beyond_four_sigma(data) -> None:
    from hydra_engine.model.baseline import INPUT_CLIP_SD

    x, y = data
    model = BaselineModel(ModelSpec("logistic", hyperparams={"C": 10.0})).fit(x, y)
    row = x.iloc[[-1]].copy()
    mean, sd = x.mean(), x.std(ddof=0)
    far, edge = row.copy(), row.copy()
    far["ret_5"] = mean["ret_5"] + 50 * sd["ret_5"]  # a market that has started to trend hard
    edge["ret_5"] = mean["ret_5"] + INPUT_CLIP_SD * sd["ret_5"] * 1.0001
    assert model.predict_proba(far)[0] == pytest.approx(model.predict_proba(edge)[0], abs=1e-6)
    assert 0.01 < model.predict_proba(far)[0] < 0.99
