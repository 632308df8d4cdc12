"""Engine: composition, status, events, operator commands, and the import boundaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_engine.events import CycleFinished, CycleStarted, FillRecorded, OrderUpdated
from hydra_engine.store.database import StoreLockedError

ROOT = Path(__file__).resolve().parents[1]


ALWAYS_TAKE_A_SIDE = {"execution.long_threshold": 0.5, "execution.short_threshold": 0.5}
"""The engine's mechanics are under test, not the champion's edge: a champion that always takes a
side trades within two days whatever its probabilities."""


def make_engine(tmp_path: Path, universe: Any) -> Engine:
    return Engine(load_settings(None, ALWAYS_TAKE_A_SIDE), data_dir=tmp_path, universe=universe, agent=False)


def drain(sub: Any) -> list[Any]:
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


async def test_status_and_events_after_a_lockstep_day(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    sub = eng.bus.subscribe(maxsize=10_000)
    await eng.start()
    try:
        await eng.run_days(2)
        st = eng.status()
        assert st.mode == "SIM" and st.connected and st.connection == "connected"
        assert st.trading_state == "ACTIVE" and not st.paused
        assert st.cycles_run == 4 and st.net_liquidation and st.net_liquidation > 0
        assert st.next_decision_at is not None and st.next_decision_at > st.now
        assert st.champion is not None and st.account == "DU1234567"
        assert st.store_dir.endswith("sim-DU1234567")
        assert st.gross_exposure is not None and st.gross_exposure >= 0 and st.max_gross_exposure == 4_000_000.0
        events = drain(sub)
        kinds = {type(e) for e in events}
        assert {CycleStarted, CycleFinished, OrderUpdated, FillRecorded} <= kinds
        fills = [e for e in events if isinstance(e, FillRecorded)]
        assert len(fills) == len(await eng.fill_journal.fills())
        assert all(f.predicted_slippage is not None for f in fills)
        finished = [e for e in events if isinstance(e, CycleFinished)]
        assert len(finished) == 4 and {e.outcome for e in finished} == {"FINISHED"}
    finally:
        await eng.stop()


async def test_flatten_closes_every_position_through_the_gate(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    sub = eng.bus.subscribe(maxsize=10_000)
    await eng.start()
    try:
        await eng.run_days(2)
        assert await eng.broker.get_positions(), "nothing to flatten"
        await eng.pause("flatten test")
        n_orders = len(await eng.store.orders.recent(1000))
        drain(sub)
        tasks = await eng.flatten()
        await eng.run_days(1)  # lock-step plays the flatten orders' session; paused cycles order nothing
        assert all(t.done() and not t.exception() for t in tasks)
        assert await eng.broker.get_positions() == []
        sent = [e for e in drain(sub) if isinstance(e, OrderUpdated) and e.status == "SENT"]
        assert sent, "flatten sent no order"
        assert len(await eng.store.orders.recent(1000)) > n_orders
        cmds = [e.command for e in await eng.store.ops.recent(50, kind="COMMAND")]
        assert "flatten" in cmds and "pause" in cmds
    finally:
        await eng.stop()


async def test_second_engine_on_the_same_store_is_refused(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        await eng.run_days(1)
        await eng.exchange.save_state()
        state = tmp_path / "sim-DU1234567" / "exchange.json"
        before = state.read_bytes()
        other = make_engine(tmp_path, sim_universe)
        with pytest.raises(StoreLockedError, match="in use"):
            await other.start()
        assert other.exchange is None  # refused before an exchange could save over the running one's state
        assert state.read_bytes() == before
    finally:
        await eng.stop()


async def test_reset_peak_is_journalled(tmp_path, sim_universe) -> None:
    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        await eng.run_days(1)
        peak = await eng.reset_peak(900_000.0, "paper account reset")
        assert peak == 900_000.0 and (await eng.store.equity.peak()).peak == 900_000.0
        assert any(e.command == "reset-peak" for e in await eng.store.ops.recent(20))
    finally:
        await eng.stop()


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_engine_never_imports_textual() -> None:
    code = (
        "import sys\n"
        "import hydra_engine.engine, hydra_engine.execution.runner, hydra_engine.execution.lockstep\n"
        "import hydra_tui.headless, hydra_tui.commands\n"
        "print(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')))\n"
    )
    assert _fresh(code) == "[]"


def test_sim_imports_nothing_else_of_the_engine() -> None:
    code = (
        "import sys\n"
        "import hydra_engine.sim, hydra_engine.sim.standalone, hydra_engine.sim.universe\n"
        "print(sorted(m for m in sys.modules if m.startswith('hydra_engine.') and not m.startswith('hydra_engine.sim')))\n"
    )
    assert _fresh(code) == "[]"


async def test_lockstep_runs_are_deterministic_for_a_seed(tmp_path, sim_universe) -> None:
    runs = []
    for name in ("a", "b"):
        eng = make_engine(tmp_path / name, sim_universe)
        await eng.start()
        try:
            await eng.run_days(2)
            fills = await eng.fill_journal.fills()
            runs.append(([(f.fill_time, f.symbol, f.direction, f.qty, f.fill_price, f.limit_price) for f in fills],
                         eng.status().net_liquidation))
        finally:
            await eng.stop()
    assert runs[0][0] and runs[0] == runs[1]


async def test_ib_paper_path_in_real_time_against_an_external_gateway(tmp_path, sim_universe) -> None:
    """``--broker ib``: wall clock, APScheduler, the account learnt from the first connection."""
    import datetime as dt

    from hydra_engine.sim import EmbeddedExchange
    from hydra_engine.sim.clock import SimClock

    ex = await EmbeddedExchange.start(port=0, clock=SimClock.realtime(), universe=sim_universe,
                                      state_path=tmp_path / "gateway.json")
    try:
        settings = load_settings(None, {"broker.kind": "ib", "broker.port": ex.port, "broker.client_id": 3,
                                        "runner.catch_up": False})
        eng = Engine(settings, data_dir=tmp_path / "data", agent=False)
        await eng.start()
        try:
            st = eng.status()
            assert st.mode == "PAPER" and st.store_dir.endswith("ib-DU1234567") and st.champion
            assert {j.id for j in eng.runner.scheduler.get_jobs()} == {"cycle-CL", "cycle-ZO", "cycle-retry"}
            res = await eng.force_cycle("CL")
            assert res["status"] == "FINISHED" and res["p_up"] is not None
            if res["target"] != 0:  # decided now, worked from the next liquid session's open
                ticket = eng.runner.executions["CL"]
                assert res["orders"].startswith(("scheduled", "working"))
                if ticket.waiting_until is not None:
                    assert eng.clock.now() < ticket.waiting_until < eng.clock.now() + dt.timedelta(days=4)
            again = await eng.force_cycle("CL")
            assert again["status"] == "DUPLICATE"
        finally:
            await eng.stop()
        assert ex.open_orders() == []  # a clean stop cancels what it was working
    finally:
        await ex.stop()


async def test_broker_time_follows_an_external_simulator_running_faster(tmp_path, sim_universe) -> None:
    """``hydra-tui sim --speed X``: the engine takes its time from the broker and ticks on it."""
    import asyncio
    import datetime as dt

    from hydra_engine.sim import EmbeddedExchange
    from hydra_engine.sim.clock import SimClock

    start = dt.datetime(2018, 1, 9, 19, 59, 0, tzinfo=dt.timezone.utc)  # Tuesday 13:59 CT, ZO decides at 14:00
    ex = await EmbeddedExchange.start(port=0, clock=SimClock.fixed_speed(start, 120.0), universe=sim_universe,
                                      state_path=tmp_path / "gateway.json")
    try:
        settings = load_settings(None, {"broker.kind": "ib", "broker.port": ex.port, "broker.client_id": 4,
                                        "runner.catch_up": False, "runner.broker_time_tick_s": 30})
        eng = Engine(settings, data_dir=tmp_path / "data", agent=False)
        sub = eng.bus.subscribe(types=(CycleFinished,))
        await eng.start()
        try:
            assert eng.broker_time and eng.runner.scheduler is None
            assert abs((eng.clock.now() - ex.clock.now()).total_seconds()) < 60  # 0.5 real s at 120x
            done = await asyncio.wait_for(sub.get(), 60)
            assert (done.market, done.trading_date) == ("ZO", dt.date(2018, 1, 9))
            assert done.summary["trigger"] in ("tick", "catch-up") and done.outcome == "FINISHED"
            row = await eng.store.cycles.get("ZO", dt.date(2018, 1, 9))
            assert row is not None and row.started_at >= dt.datetime(2018, 1, 9, 20, 0, tzinfo=dt.timezone.utc)
        finally:
            await eng.stop()
    finally:
        await ex.stop()


async def test_every_store_writer_commits_through_the_write_gate(tmp_path, sim_universe) -> None:
    """The agent's journal and state, the fill journal, gate and registry share the store's
    connection: a commit outside ``store.tx`` would land inside another writer's transaction."""
    from structlog.testing import capture_logs

    eng = Engine(load_settings(None, ALWAYS_TAKE_A_SIDE), data_dir=tmp_path, universe=sim_universe, agent=True)
    with capture_logs() as logs:
        await eng.start()
        try:
            await eng.run_days(2)
            assert await eng.agent.journal.query(limit=5), "the agent journalled nothing: nothing was tested"
            assert await eng.fill_journal.fills(), "no fill was journalled: nothing was tested"
        finally:
            await eng.stop()
    foreign = [entry for entry in logs if entry.get("event") == "write_gate_foreign_commit"]
    assert foreign == []


async def test_lockstep_stops_where_the_exchanges_history_ends(tmp_path, sim_universe, monkeypatch) -> None:
    """Past the universe's last day there are no bars to decide on: the run stops and says so
    instead of stepping empty days."""
    import datetime as dt

    eng = make_engine(tmp_path, sim_universe)
    await eng.start()
    try:
        monkeypatch.setattr(eng.driver.exchange.universe, "end", dt.date(2018, 1, 5))
        report = await eng.run_days(None)
        assert report.data_end == dt.date(2018, 1, 5)
        assert report.days == 4 and report.cycles[-1]["trading_date"] == "2018-01-05"  # 01-02 .. 01-05
        again = await eng.run_days(1)
        assert again.days == 0 and again.data_end == dt.date(2018, 1, 5)
    finally:
        await eng.stop()
