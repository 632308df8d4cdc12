"""Every decision due is run or accounted for: decisions a later one superseded while the engine was
not running are recorded SKIPPED with the reason, once."""

from __future__ import annotations

import datetime as dt

from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_engine.store.cycles import CycleStatus


async def test_decisions_superseded_while_down_are_recorded_skipped(tmp_path, sim_universe) -> None:
    eng = Engine(load_settings(None, {"markets": "ZO"}), data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        await eng.run_days(1)
        [first] = await eng.store.cycles.recent(limit=5)
        later = first.trading_date + dt.timedelta(days=7)  # as if the engine came back a week later
        await eng.runner.run_daily_cycle("ZO", trading_date=later, trigger="catch-up")
        rows = {r.trading_date: r for r in await eng.store.cycles.recent(limit=20)}
        gap = [d for d in rows if first.trading_date < d < later]
        assert gap and all(rows[d].status == CycleStatus.SKIPPED for d in gap)
        assert all("missed" in rows[d].summary["skipped"] and later.isoformat() in rows[d].summary["skipped"] for d in gap)
        assert all(d.weekday() < 5 for d in gap) and rows[later].status == CycleStatus.FINISHED
        again = await eng.runner.run_daily_cycle("ZO", trading_date=later, trigger="catch-up")
        assert again["status"] == "DUPLICATE"
        assert len(await eng.store.cycles.recent(limit=20)) == len(rows)  # nothing recorded twice
    finally:
        await eng.stop()


async def test_a_scheduled_start_records_superseded_decisions_before_any_cycle_runs(tmp_path, sim_universe) -> None:
    """The soak's short form once lost two decisions: each restart queued them behind another
    market's catch-up and was killed before they ran. A start now records them at once."""
    from hydra_engine.execution.runner import PaperTradingRunner
    from hydra_engine.markets import last_decision_at_or_before

    eng = Engine(load_settings(None, {"markets": "ZO"}), data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        await eng.run_days(1)
        [first] = await eng.store.cycles.recent(limit=5)
        await eng.exchange.advance_to(eng.clock.now() + dt.timedelta(days=7))  # the engine was down a week
        runner = PaperTradingRunner(
            eng.broker, eng.risk_gate, eng.order_manager, eng.fill_journal, None, eng.champion, eng.reconciler,
            None, store=eng.store, markets=eng.settings.markets, clock=eng.clock, bus=eng.bus,
        )
        await runner.start(schedule=True, catch_up=False)  # no cycle runs: only the record is written
        try:
            rows = {r.trading_date: r for r in await eng.store.cycles.recent(limit=20)}
            gap = sorted(d for d in rows if d > first.trading_date)
            assert len(gap) >= 3 and all(rows[d].status == CycleStatus.SKIPPED for d in gap)
            assert all("superseded" in rows[d].summary["skipped"] for d in gap)
            latest, _ = last_decision_at_or_before(eng.settings.markets[0], eng.clock.now())
            assert latest not in rows and max(gap) < latest  # the latest decision stands: it is not recorded
        finally:
            await runner.stop()
    finally:
        await eng.stop()
