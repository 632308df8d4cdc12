"""Against the embedded exchange's synthetic market: the planted momentum is learned out of sample
before the known change date, and the same model loses its edge after the flip."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.features import build_features, make_labels, tradable_returns
from hydra_engine.model.walk_forward import walk_forward_evaluate
from hydra_engine.sim.universe import build_universe


def test_planted_momentum_learned_then_lost_after_flip() -> None:
    end = dt.date(2020, 12, 31)
    u = build_universe(seed=7, symbols=["ZO"], scenarios={"ZO": "momentum_flip"}, start=dt.date(2015, 1, 1), end=end)
    change = pd.Timestamp(u.scenario("ZO").change_dates[0])
    bars = pd.DataFrame(
        [{"date": b.date, "open": b.open, "high": b.high, "low": b.low, "close": b.close, "volume": b.volume}
         for b in u.continuous_bars("ZO", end, 5000)]
    )
    f, y, r = build_features(bars), make_labels(bars), tradable_returns(bars)
    before = f[f.index < change]
    spec = ModelSpec("logistic", features=("ret_5",), train_window_days=400)
    res = walk_forward_evaluate(spec, before, y, r, cost_bps=1.0, n_splits=4, test_window=100, embargo=5)
    assert res.oos.index[-1] < change
    assert res.overall.hit_rate > 0.54
    assert res.overall.sharpe > 0.5

    model = BaselineModel(spec).fit(before, y)
    after = f[f.index >= change].iloc[:250]
    y_after = y.reindex(after.index).dropna()
    hit_after = float((model.predict(after.loc[y_after.index]) == y_after).mean())
    assert hit_after < res.overall.hit_rate - 0.05
