"""BaselineModel: one scikit-learn classifier of next-day direction, described by a ModelSpec.

The agent mutates specs (family, hyperparameters, feature subset, training window, calibration)
and compares the results, so a spec is plain data that round-trips through JSON, and a fitted model
carries a content hash over its spec, its training window and its training data: the same spec
fitted on the same rows always gets the same hash. ``fit`` and ``predict*`` are synchronous and
CPU-bound: callers run them in a subprocess or ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import sklearn
import structlog
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import ThreadpoolController

from hydra_engine.model.features import (
    FEATURE_COLUMNS,
    FeatureError,
    InsufficientHistoryError,
)

log = structlog.get_logger(__name__)

Family = Literal["logistic", "hist_gb", "random_forest"]
Calibration = Literal["sigmoid", "isotonic"] | None

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic": {"C": 0.1, "l1_ratio": 0.0, "max_iter": 1000, "class_weight": None},
    "hist_gb": {
        "learning_rate": 0.05,
        "max_iter": 150,
        "max_depth": 3,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 40,
        "l2_regularization": 1.0,
        "random_state": 0,
    },
    "random_forest": {
        "n_estimators": 200,
        "max_depth": 4,
        "min_samples_leaf": 20,
        "max_features": "sqrt",
        "random_state": 0,
    },
}
"""Families the agent may choose from and the hyperparameters each accepts (with defaults)."""

CALIBRATIONS: tuple[str | None, ...] = (None, "sigmoid", "isotonic")
CALIBRATION_FRACTION = 0.25
"""Share of the training window (its most recent rows) held out to fit the calibrator."""

MIN_TRAIN_ROWS = 60
"""Fewer labelled rows than this cannot give a model worth trading."""

INPUT_CLIP_SD = 4.0
"""A linear model sees each standardized input clipped to this many standard deviations of its
training rows. After a break, features can leave the training range by ten sigma or more (a market
that turns from mean reversion to momentum trends far); extrapolating a linear score that far makes
a probability of 0.001 and one miss costs 7 nats. Trees never extrapolate and need no clip."""

ISOTONIC_BOUNDS = (0.02, 0.98)
"""Isotonic calibration output range: a step function fitted on a few hundred days would
otherwise say 0 or 1 and make a single miss cost ~35 nats of log loss."""

NATIVE_THREADS = 1
"""BLAS/OpenMP threads while fitting or predicting. Measured on 2 busy cores: one thread made a
histogram-boosting walk-forward 4x faster and avoided 30 s OpenMP stalls; the agent gets its
parallelism from experiment subprocesses instead."""

_THREADPOOLS = ThreadpoolController()

MODEL_FILE = "model.pkl"
META_FILE = "metadata.json"
FORMAT_VERSION = 1


class ModelError(ValueError):
    """A spec, a training set or a saved model directory is unusable; the message says which part."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything that defines a model before it sees data.

    ``train_window_days``: the most recent N labelled trading days are used for fitting (rows,
    not calendar days). ``calibrate``: None, "sigmoid" (Platt) or "isotonic", fitted on the last
    ``CALIBRATION_FRACTION`` of the window with the classifier refitted on the whole window after.
    ``train_since``: an ISO date (a drift episode's first alarm): a fit made after it forgets the
    rows before it, using the rows since (at least ``MIN_TRAIN_ROWS``, at most the window); a fit
    made before it (an early walk-forward fold) is the plain recipe. The recipe "what the champion
    did, until a change was detected; the change's rows only, after it".
    """

    family: str
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURE_COLUMNS
    train_window_days: int = 750
    calibrate: str | None = None
    train_since: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILY_DEFAULTS:
            raise ModelError(f"spec.family: {self.family!r} is not one of {sorted(FAMILY_DEFAULTS)}")
        allowed = FAMILY_DEFAULTS[self.family]
        unknown = sorted(set(self.hyperparams) - set(allowed))
        if unknown:
            raise ModelError(f"spec.hyperparams: {unknown} not accepted by {self.family}; accepted: {sorted(allowed)}")
        object.__setattr__(self, "hyperparams", dict(self.hyperparams))
        feats = tuple(self.features)
        if not feats or not all(isinstance(f, str) and f for f in feats):
            raise ModelError(f"spec.features: need a non-empty list of column names, got {self.features!r}")
        if len(set(feats)) != len(feats):
            raise ModelError(f"spec.features: duplicate names in {list(feats)}")
        object.__setattr__(self, "features", feats)
        if not isinstance(self.train_window_days, int) or self.train_window_days < MIN_TRAIN_ROWS:
            raise ModelError(
                f"spec.train_window_days: must be an integer >= {MIN_TRAIN_ROWS}, got {self.train_window_days!r}"
            )
        if self.calibrate not in CALIBRATIONS:
            raise ModelError(f"spec.calibrate: {self.calibrate!r} is not one of {list(CALIBRATIONS)}")
        if self.train_since is not None:
            try:
                since = pd.Timestamp(str(self.train_since)[:10])
            except (TypeError, ValueError):
                raise ModelError(f"spec.train_since: need an ISO date (YYYY-MM-DD), got {self.train_since!r}") from None
            object.__setattr__(self, "train_since", since.date().isoformat())
        _check_hyperparams(self)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def resolved_hyperparams(self) -> dict[str, Any]:
        """The family's defaults overlaid with this spec's values."""
        return {**FAMILY_DEFAULTS[self.family], **self.hyperparams}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "family": self.family,
            "hyperparams": dict(sorted(self.hyperparams.items())),
            "features": list(self.features),
            "train_window_days": self.train_window_days,
            "calibrate": self.calibrate,
        }
        if self.train_since is not None:  # absent otherwise: older specs keep their hashes and keys
            out["train_since"] = self.train_since
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        known = {"family", "hyperparams", "features", "train_window_days", "calibrate", "train_since"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"spec: unknown key(s) {unknown}; accepted: {sorted(known)}")
        if "family" not in data:
            raise ModelError("spec: missing key 'family'")
        return cls(
            family=data["family"],
            hyperparams=dict(data.get("hyperparams") or {}),
            features=tuple(data.get("features") or FEATURE_COLUMNS),
            train_window_days=int(data.get("train_window_days", 750)),
            calibrate=data.get("calibrate"),
            train_since=data.get("train_since"),
        )

    def rows_to_fit(self, dates: pd.Index) -> int:
        """How many of the newest labelled ``dates`` (sorted) a fit uses: the window, or after
        ``train_since`` the rows since it (at least ``MIN_TRAIN_ROWS``, at most the window)."""
        n = min(len(dates), self.train_window_days)
        if self.train_since is None or len(dates) == 0 or dates[-1] < pd.Timestamp(self.train_since):
            return n
        since = int(len(dates) - dates.searchsorted(pd.Timestamp(self.train_since)))
        return min(n, max(since, MIN_TRAIN_ROWS))


def _build_estimator(spec: ModelSpec) -> Any:
    hp = spec.resolved_hyperparams()
    if spec.family == "logistic":
        solver = "saga" if float(hp["l1_ratio"]) > 0.0 else "lbfgs"
        clf = LogisticRegression(
            C=float(hp["C"]),
            l1_ratio=float(hp["l1_ratio"]),
            max_iter=int(hp["max_iter"]),
            class_weight=hp["class_weight"],
            solver=solver,
        )
        clip = FunctionTransformer(clip_standardized, feature_names_out="one-to-one")
        return Pipeline([("scale", StandardScaler()), ("clip", clip), ("clf", clf)])
    if spec.family == "hist_gb":
        return HistGradientBoostingClassifier(early_stopping=False, **hp)
    return RandomForestClassifier(n_jobs=1, **hp)


def _check_hyperparams(spec: ModelSpec) -> None:
    """Fail at spec time, not hours later in an experiment, on an out-of-range hyperparameter."""
    try:
        est = _build_estimator(spec)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"spec.hyperparams ({spec.family}): {exc}") from exc
    step = est.steps[-1][1] if isinstance(est, Pipeline) else est
    validate = getattr(step, "_validate_params", None)
    if validate is None:  # pragma: no cover - older/newer scikit-learn without the hook
        return
    try:
        validate()
    except (TypeError, ValueError) as exc:
        raise ModelError(f"spec.hyperparams ({spec.family}): {exc}") from exc


def clip_standardized(z: np.ndarray) -> np.ndarray:
    """Standardized inputs clipped to +-``INPUT_CLIP_SD`` (a pipeline step; module level so it pickles)."""
    return np.clip(z, -INPUT_CLIP_SD, INPUT_CLIP_SD)


def select_features(features: pd.DataFrame, names: tuple[str, ...], what: str) -> pd.DataFrame:
    if not isinstance(features, pd.DataFrame):
        raise ModelError(f"{what}: expected a DataFrame of features, got {type(features).__name__}")
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise FeatureError(f"{what}: feature column(s) {missing} missing; have {list(features.columns)}")
    x = features[list(names)]
    try:
        values = x.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise FeatureError(f"{what}: feature columns must be numeric: {exc}") from exc
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise FeatureError(f"{what}: feature {names[col]!r} is NaN/inf at {x.index[row]} (row {row})")
    return x


class BaselineModel:
    """A fitted (or not yet fitted) classifier whose ``predict_proba`` returns P(up) per row."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._estimator: Any = None
        self._calibrator: Any = None
        self.train_start: str | None = None
        self.train_end: str | None = None
        self.n_train: int = 0
        self.up_fraction: float | None = None
        self._content_hash: str | None = None

    @property
    def is_fitted(self) -> bool:
        return self._estimator is not None

    @property
    def features(self) -> tuple[str, ...]:
        return self.spec.features

    @property
    def hyperparams(self) -> dict[str, Any]:
        return self.spec.resolved_hyperparams()

    def fit(self, features: pd.DataFrame, labels: pd.Series) -> BaselineModel:
        """Fit on the last ``train_window_days`` dates present in both features and labels (after
        ``train_since``: the rows since it, see ``ModelSpec.rows_to_fit``)."""
        if not isinstance(labels, pd.Series):
            raise ModelError(f"fit: labels must be a pandas Series, got {type(labels).__name__}")
        x_all = select_features(features, self.spec.features, "fit")
        common = x_all.index.intersection(labels.index)
        y_all = labels.loc[common]
        if y_all.isna().any():
            raise FeatureError(f"fit: label is NaN at {y_all.index[y_all.isna()][0]}")
        n_fit = self.spec.rows_to_fit(pd.Index(y_all.index))
        x = x_all.loc[common].iloc[len(common) - n_fit :]
        y = y_all.iloc[len(common) - n_fit :].astype(int)
        if len(x) < MIN_TRAIN_ROWS:
            raise InsufficientHistoryError(
                f"fit: {len(x)} labelled feature rows, need at least {MIN_TRAIN_ROWS} "
                f"(features {len(features)} rows, labels {len(labels)}, {len(common)} in common)"
            )
        if not set(np.unique(y)) <= {0, 1}:
            raise ModelError(f"fit: labels must be 0/1, got {sorted(np.unique(y))}")
        if y.nunique() < 2:
            raise InsufficientHistoryError(f"fit: all {len(y)} labels in the window are {int(y.iloc[0])}; need both classes")
        xv, yv = x.to_numpy(dtype=float), y.to_numpy()
        calibrator = None
        with _THREADPOOLS.limit(limits=NATIVE_THREADS):
            if self.spec.calibrate is not None:
                calibrator = self._fit_calibrator(xv, yv)
            estimator = _build_estimator(self.spec)
            estimator.fit(xv, yv)
        self._estimator, self._calibrator = estimator, calibrator
        self.train_start, self.train_end = str(x.index[0]), str(x.index[-1])
        self.n_train = len(x)
        self.up_fraction = float(yv.mean())
        self._content_hash = self._hash_training(x, y)
        log.debug("model.fitted", family=self.spec.family, n_train=self.n_train, train_end=self.train_end)
        return self

    def _fit_calibrator(self, xv: np.ndarray, yv: np.ndarray) -> Any:
        n_cal = max(int(len(yv) * CALIBRATION_FRACTION), 20)
        x_fit, y_fit, x_cal, y_cal = xv[:-n_cal], yv[:-n_cal], xv[-n_cal:], yv[-n_cal:]
        if len(np.unique(y_fit)) < 2 or len(np.unique(y_cal)) < 2 or len(y_fit) < 20:
            raise InsufficientHistoryError(
                f"fit: calibration needs both classes in the fitting part ({len(y_fit)} rows) "
                f"and the calibration part ({n_cal} rows)"
            )
        base = _build_estimator(self.spec).fit(x_fit, y_fit)
        raw = base.predict_proba(x_cal)[:, 1]
        if self.spec.calibrate == "isotonic":
            low, high = ISOTONIC_BOUNDS
            return IsotonicRegression(y_min=low, y_max=high, out_of_bounds="clip").fit(raw, y_cal)
        return LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y_cal)

    def _hash_training(self, x: pd.DataFrame, y: pd.Series) -> str:
        h = hashlib.sha256()
        ident = self.spec.to_dict() | {"hyperparams": self.spec.resolved_hyperparams()}
        h.update(json.dumps(ident, sort_keys=True, default=str).encode())
        h.update(json.dumps([self.train_start, self.train_end, self.n_train]).encode())
        h.update(np.ascontiguousarray(x.to_numpy(dtype=float)).tobytes())
        h.update(np.ascontiguousarray(y.to_numpy(dtype=np.int64)).tobytes())
        h.update("|".join(map(str, x.index)).encode())
        return h.hexdigest()

    def content_hash(self) -> str:
        """SHA-256 over spec, training window and training data; stable across processes."""
        if self._content_hash is None:
            raise ModelError("content_hash: model is not fitted")
        return self._content_hash

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(up) for each row (1-D array)."""
        if not self.is_fitted:
            raise ModelError("predict_proba: model is not fitted")
        x = select_features(features, self.spec.features, "predict_proba").to_numpy(dtype=float)
        if len(x) == 0:
            return np.empty(0)
        with _THREADPOOLS.limit(limits=NATIVE_THREADS):
            p = self._estimator.predict_proba(x)[:, 1]
            if self._calibrator is not None:
                if isinstance(self._calibrator, IsotonicRegression):
                    p = self._calibrator.predict(p)
                else:
                    p = self._calibrator.predict_proba(_logit(p).reshape(-1, 1))[:, 1]
        return np.clip(np.asarray(p, dtype=float), 0.0, 1.0)

    def predict(self, features: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
        """1 (up) where P(up) > threshold, else 0."""
        return (self.predict_proba(features) > threshold).astype(int)

    def metadata(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "spec": self.spec.to_dict(),
            "content_hash": self.content_hash(),
            "train_start": self.train_start,
            "train_end": self.train_end,
            "n_train": self.n_train,
            "up_fraction": self.up_fraction,
            "sklearn_version": sklearn.__version__,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pkl`` and ``metadata.json`` (with the pickle's SHA-256) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps({"estimator": self._estimator, "calibrator": self._calibrator}, protocol=5)
        meta = self.metadata() | {"model_file_sha256": hashlib.sha256(blob).hexdigest()}
        _write_durable(d / MODEL_FILE, blob)
        _write_durable(d / META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
        return d

    @classmethod
    def load(cls, directory: str | Path) -> BaselineModel:
        """Read a directory written by ``save``; refuses a corrupted or tampered model file."""
        d = Path(directory)
        try:
            meta = json.loads((d / META_FILE).read_text())
            blob = (d / MODEL_FILE).read_bytes()
        except FileNotFoundError as exc:
            raise ModelError(f"{d}: not a saved model ({exc.filename} missing)") from exc
        except json.JSONDecodeError as exc:
            raise ModelError(f"{d / META_FILE}: invalid JSON at line {exc.lineno}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{d / META_FILE}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        if hashlib.sha256(blob).hexdigest() != meta.get("model_file_sha256"):
            raise ModelError(f"{d / MODEL_FILE}: SHA-256 does not match metadata; file corrupted or replaced")
        if meta.get("sklearn_version") != sklearn.__version__:
            log.warning("model.sklearn_version_differs", saved=meta.get("sklearn_version"), running=sklearn.__version__)
        parts = pickle.loads(blob)  # noqa: S301 - our own file, integrity checked above
        model = cls(ModelSpec.from_dict(meta["spec"]))
        model._estimator, model._calibrator = parts["estimator"], parts["calibrator"]
        model.train_start, model.train_end = meta["train_start"], meta["train_end"]
        model.n_train, model.up_fraction = int(meta["n_train"]), meta.get("up_fraction")
        model._content_hash = meta["content_hash"]
        return model

    def __repr__(self) -> str:
        state = f"hash={self._content_hash[:12]}" if self._content_hash else "unfitted"
        return f"BaselineModel({self.spec.family}, {len(self.spec.features)} features, {state})"


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
