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


def make_engine(tmp_path: Path, universe: Any) -> Engine:
    return Engine(load_settings(None), data_dir=tmp_path, universe=universe, agent=False)


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
        task = await eng.flatten()
        await eng.run_days(1)  # lock-step plays the flatten orders' session; paused cycles order nothing
        assert task.done() and not task.exception()
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
        other = make_engine(tmp_path, sim_universe)
        with pytest.raises(StoreLockedError):
            await other.start()
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
