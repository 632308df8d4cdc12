"""Settings to parts for the composition root: the agent's configuration and the fit of the
bootstrap champion (run in a worker thread when the registry has none). ``[sim]`` is
``config.SimSettings``, checked with every other section when the settings load."""

from __future__ import annotations

import math
from typing import Any, Mapping


def agent_config(raw: Mapping[str, Any]) -> Any:
    """The ``[agent]`` section as an ``AgentConfig`` (clear errors for bad keys and values)."""
    from hydra_engine.agent.loop import AgentConfig
    from hydra_engine.config import load_dataclass

    return load_dataclass(AgentConfig, raw, "agent")


def fit_baseline(bars: Any, spec: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Fit the default spec on every labelled day (runs in a worker thread)."""
    import numpy as np

    from hydra_engine.model.baseline import BaselineModel, ModelSpec
    from hydra_engine.model.features import build_features, make_labels

    feats = build_features(bars[["open", "high", "low", "close", "volume"]])
    labels = make_labels(bars[["open", "high", "low", "close", "volume"]])
    idx = feats.index.intersection(labels.index)
    model = BaselineModel(ModelSpec.from_dict(spec)).fit(feats.loc[idx], labels.loc[idx])
    p = np.clip(model.predict_proba(feats.loc[idx]), 1e-6, 1 - 1e-6)
    y = labels.loc[idx].to_numpy()
    ll = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    return model, {"in_sample_log_loss": ll if math.isfinite(ll) else None, "n_train": int(len(idx)),
                   "bootstrap": True, "train_end": str(idx[-1].date())}
