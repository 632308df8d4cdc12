"""A lost broker connection never costs a decision: a cycle skipped for it runs again once connected
(while its decision stands), and an execution whose broker state is unknown waits for it."""

from __future__ import annotations


from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_engine.store.cycles import CycleStatus


async def test_a_cycle_skipped_for_a_lost_connection_runs_again_once(tmp_path, sim_universe) -> None:
    eng = Engine(load_settings(None, {"markets": "ZO"}), data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        await eng.run_days(1)
        [rec] = await eng.store.cycles.recent(limit=5)
        day = rec.trading_date
        # as the cycle records a disconnection mid-way (NotConnected from the gateway)
        await eng.store.cycles.finish("ZO", day, {"skipped": "broker disconnected mid-cycle", "retry": True},
                                      status=CycleStatus.SKIPPED)
        tasks = await eng.runner.retry_skipped()
        assert len(tasks) == 1
        summary = await tasks[0]
        assert summary["status"] == CycleStatus.FINISHED.value and summary["trigger"] == "retry"
        again = await eng.store.cycles.get("ZO", day)
        assert again.status == CycleStatus.FINISHED and again.attempts == 2
        assert await eng.runner.retry_skipped() == []  # finished: nothing left to retry
        # a skipped cycle without the retry mark (e.g. a holiday or a pause) is not run again
        await eng.store.cycles.finish("ZO", day, {"skipped": "paused"}, status=CycleStatus.SKIPPED)
        assert await eng.runner.retry_skipped() == []
        dup = await eng.runner.run_daily_cycle("ZO", trading_date=day, trigger="catch-up")
        assert dup["status"] == "DUPLICATE"
    finally:
        await eng.stop()


async def test_an_execution_waits_for_the_broker_instead_of_giving_up(tmp_path, sim_universe) -> None:
    """The gateway restarts while ZO's order waits for its session: when the session opens the
    broker's state is unknown, so the desk waits for the reconnection and its reconciliation, then
    works the order for that decision (before, the execution task failed and the decision was lost)."""
    settings = load_settings(None, {"markets": "ZO", "execution.long_threshold": 0.5, "execution.short_threshold": 0.5})
    eng = Engine(settings, data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        await eng.run_days(1)
        ticket = eng.runner.desk.tickets["ZO"]
        assert ticket.waiting_until is not None, "the decision's order should wait for the next session"
        eng.exchange.spawn(eng.exchange.restart(1.0), "test-restart")  # refused for a real second
        await eng.run_days(1)
        orders = [o for o in await eng.store.orders.recent(20) if o.market == "ZO"]
        assert any(o.trading_date == ticket.session_date for o in orders), \
            [(o.trading_date, o.status) for o in orders]
        assert ticket.task.done() and ticket.task.exception() is None
    finally:
        await eng.stop()
