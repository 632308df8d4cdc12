"""The stored continuous history equals the broker's back-adjusted series after a roll: no roll gap
left in the bars that features, labels and the drift detectors read."""

from __future__ import annotations

import numpy as np

from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_engine.execution.bar_history import CONTINUOUS


async def test_a_roll_replaces_the_stored_history_with_the_readjusted_one(tmp_path, sim_universe) -> None:
    eng = Engine(load_settings(None, {"markets": "CL"}), data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        before = await eng.store.bars.load("CL", CONTINUOUS)
        await eng.run_days(25)  # CL's front month rolls at least once in any 25 trading days
        stored = await eng.store.bars.load("CL", CONTINUOUS)
        last = stored.index[-1].date()
        broker = sim_universe.continuous_bars("CL", last, len(stored))
        assert [b.date for b in broker] == [d.date() for d in stored.index]
        np.testing.assert_allclose(stored["close"].to_numpy(), [b.close for b in broker], rtol=1e-9)
        # the roll really re-adjusted the older bars: the first stored close moved
        first = before.index[0]
        assert stored.loc[first, "close"] != before.loc[first, "close"]
        rows = await eng.store.cycles.recent(limit=50)
        assert any(r.summary.get("bars_readjusted") for r in rows)
    finally:
        await eng.stop()
