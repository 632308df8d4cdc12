"""Bounded memory over a long run: a real engine trading every day on the embedded exchange (real
ib_async client) keeps ib_async's trade and fill lists bounded once finished trades are trimmed, and
trimming loses nothing (every execution the exchange made is journalled once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_engine.operations.memory_guard import MemoryGuard

ALWAYS_TAKE_A_SIDE = {"execution.long_threshold": 0.5, "execution.short_threshold": 0.5}
DAYS = 15
KEEP = 1


async def test_a_long_runs_trade_list_stays_bounded(tmp_path: Path, sim_universe: Any) -> None:
    eng = Engine(load_settings(None, ALWAYS_TAKE_A_SIDE), data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        guard = MemoryGuard(eng.broker, keep=KEEP)  # run by hand once a simulated day
        wrapper = eng.broker.ib.wrapper
        sizes = []
        for _ in range(DAYS):
            await eng.run_days(1)
            guard.run_once()
            done = [t for t in wrapper.trades.values() if t.isDone()]
            sizes.append((len(done), len(wrapper.trades), len(wrapper.fills)))
        assert guard.trimmed >= 3, f"too few trades to test anything: {sizes}"
        assert guard.trimmed + len(wrapper.trades) > max(n for _, n, _ in sizes)  # untrimmed, it would have grown
        assert max(d for d, _, _ in sizes) <= KEEP
        working = {id(w.trade) for w in eng.order_manager.working_orders if w.trade is not None}
        assert working <= {id(t) for t in wrapper.trades.values()}  # working orders are never dropped
        assert len(wrapper.fills) <= sum(len(t.fills) for t in wrapper.trades.values())
        assert guard.rss is not None and guard.rss > 0
        # nothing lost: every execution the exchange made is in the journal, once
        journalled = [f.exec_id for f in await eng.fill_journal.fills()]
        assert len(journalled) == len(set(journalled)) > 0
        made = {e.exec_id for e in eng.exchange.executions_today()}
        assert made <= set(journalled)
        # the age rule alone: finished trades last touched longer ago than max_age go too
        assert eng.broker.trim_finished_trades(max_age_s=0.0, keep=1000) >= 0
        assert not [t for t in wrapper.trades.values() if t.isDone()]
    finally:
        await eng.stop()
