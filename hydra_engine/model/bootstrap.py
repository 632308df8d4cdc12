"""The bootstrap champion with an honest reference: fitted on the older part of the history, scored
on a held-out recent segment it never saw.

Detectors and the performance monitor are started from the held-out (out-of-sample) statistics, so
they see the model as it will really do, not as it did on the rows it was fitted to; an in-sample
reference makes live days look worse from day one and the agent alarms at far more than its
false-alarm budget. A purge of ``horizon + 1`` rows between the two parts keeps the labels of the
last training rows from overlapping the held-out returns. Runs in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.features import build_features, make_labels, tradable_returns
from hydra_engine.model.walk_forward import realized_signal_pnl

__all__ = ["MIN_HOLDOUT_DAYS", "fit_with_holdout"]

MIN_HOLDOUT_DAYS = 40
"""Fewer held-out days than this give no usable reference; the monitors then warm up on live days."""
MIN_TRAIN_DAYS = 60


def _log_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(pc) + (1 - y) * np.log(1 - pc))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def fit_with_holdout(bars: pd.DataFrame, spec: Mapping[str, Any], *, holdout_fraction: float = 0.25,
                     horizon: int = 1, cost_bps: float = 1.0) -> tuple[BaselineModel, dict[str, Any]]:
    """Fit ``spec`` on the first ``1 - holdout_fraction`` of the labelled days; score the rest.

    Returns the model and its registry metrics: ``in_sample_log_loss``, ``holdout`` (the held-out
    segment's dates and means), ``agent_oos_daily`` (its daily log loss, hit and net tradable return:
    the performance monitor's reference), ``reference_end`` (where live observation starts) and
    ``walk_forward.overall.log_loss`` (the out-of-sample log loss, for the overfit check).
    With too little history for both parts, the whole history is fitted and no reference is given.
    """
    ohlcv = bars[["open", "high", "low", "close", "volume"]]
    feats = build_features(ohlcv)
    labels = make_labels(ohlcv, horizon)
    rets = tradable_returns(ohlcv, horizon)
    idx = feats.index.intersection(labels.index).intersection(rets.index)
    model_spec = ModelSpec.from_dict(dict(spec))
    n_hold = int(round(len(idx) * float(holdout_fraction)))
    purge = horizon + 1
    if n_hold < MIN_HOLDOUT_DAYS or len(idx) - n_hold - purge < MIN_TRAIN_DAYS:
        model = BaselineModel(model_spec).fit(feats.loc[idx], labels.loc[idx])
        y = labels.loc[idx].to_numpy()
        ll_all = float(_log_loss(model.predict_proba(feats.loc[idx]), y).mean())
        return model, {"in_sample_log_loss": _finite(ll_all), "n_train": int(len(idx)), "bootstrap": True,
                       "train_end": str(idx[-1].date()), "holdout": None}
    train, hold = idx[: len(idx) - n_hold - purge], idx[len(idx) - n_hold:]
    model = BaselineModel(model_spec).fit(feats.loc[train], labels.loc[train])
    y_tr = labels.loc[train].to_numpy()
    in_ll = float(_log_loss(model.predict_proba(feats.loc[train]), y_tr).mean())
    p = model.predict_proba(feats.loc[hold])
    y = labels.loc[hold].to_numpy()
    ll = _log_loss(p, y)
    hit = ((p > 0.5).astype(int) == y).astype(float)
    net = realized_signal_pnl(model, feats, rets, hold, cost_bps).net
    sd = float(np.std(net, ddof=1)) if len(net) > 1 else 0.0
    holdout = {"start": str(hold[0].date()), "end": str(hold[-1].date()), "n": int(len(hold)),
               "log_loss": _finite(float(ll.mean())), "hit_rate": float(hit.mean()),
               "net_return_mean": float(np.mean(net)), "net_sharpe_daily": _finite(float(np.mean(net)) / sd) if sd > 0 else None,
               "fraction": float(holdout_fraction), "purge_days": purge}
    return model, {
        "in_sample_log_loss": _finite(in_ll), "n_train": int(len(train)), "bootstrap": True,
        "train_end": str(train[-1].date()), "holdout": holdout, "reference_end": holdout["end"],
        "agent_oos_daily": {"log_loss": [float(v) for v in ll], "hit": [float(v) for v in hit],
                            "return": [float(v) for v in net]},
        "walk_forward": {"overall": {"log_loss": holdout["log_loss"], "hit_rate": holdout["hit_rate"]}},
    }
