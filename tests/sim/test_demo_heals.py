"""The default universe's healing market (ZO, ``reversion_to_momentum``), checked in-process with
the agent's own parts: the planted relation pays its costs before the break, the break is early in
a default run, the stale champion inverts after it, and a refitted model learns the new relation."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hydra_engine.agent.core import AgentConfig
from hydra_engine.model.baseline import ModelSpec
from hydra_engine.model.walk_forward import walk_forward_evaluate
from hydra_engine.sim.calendar import business_days
from hydra_engine.sim.universe import DEFAULT_SYMBOLS, build_universe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import healing  # noqa: E402


def test_default_universe_breaks_zo_about_50_days_into_a_default_run() -> None:
    assert "ZO" in DEFAULT_SYMBOLS
    u = build_universe(seed=7)
    info = u.scenario("ZO")
    assert info.name == "reversion_to_momentum"
    assert (info.coefficient_before, info.coefficient_after) == (-0.35, 0.35)
    start = u.default_clock_start().date()
    (change,) = info.change_dates
    into_run = len(business_days(start, change)) - 1
    assert 40 <= into_run <= 60
    # replay --days 252 holds the change and ~200 trading days after it
    assert len(business_days(change, start + dt.timedelta(days=365))) > 180


@pytest.mark.parametrize("seed", [1, 7])
def test_bootstrap_pays_its_costs_before_the_break_and_inverts_after(seed: int) -> None:
    d = healing.market_data(seed, "reversion_to_momentum")
    spec = ModelSpec.from_dict(AgentConfig().default_spec)
    c = int(d.features.index.searchsorted(d.change))
    t0 = c - healing.LEAD_DAYS
    pre = slice(0, t0 - 1)
    wf = walk_forward_evaluate(spec, d.features.iloc[pre], d.labels.iloc[pre], d.returns.iloc[pre], d.cost_bps,
                               n_splits=5, test_window=50, min_train=250)
    assert wf.overall.sharpe > 0.5, "the planted relation must pay the cost estimate out of sample"
    arms = healing.run_static_arms(d, spec)
    assert arms["never"].metrics()["hit"] < 0.45, "the stale champion should invert after the flip"
    assert arms["newest"].metrics()["hit"] > 0.5, "a refitted model learns the new relation"
    assert d.change == pd.Timestamp(build_universe(seed=seed).scenario("ZO").change_dates[0])
    assert np.isfinite(d.cost_bps) and d.cost_bps > 5
