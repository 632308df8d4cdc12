"""AgentLoop controls, persistence across restarts, bad input, pause and lockdown."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys

import numpy as np
import pytest

from hydra_engine.agent.experiments import SubprocessExecutor
from hydra_engine.agent.loop import AgentConfig, AgentLoop, AgentPhase, AutonomyLevel
from hydra_engine.agent.state import AgentState, AgentStateStore
from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.features import build_features, make_labels
from hydra_engine.model.registry import ModelRegistry, RegistryError

from .conftest import day, synthetic_bars

LEAN = ["ret_1", "ret_5", "ret_10", "vol_20"]


async def make_agent(conn, tmp_path, **cfg):
    registry = ModelRegistry(conn, tmp_path / "models")
    phases: list[AgentPhase] = []
    config = AgentConfig(experiment_time_limit_s=60, wf_test_window=30, wf_splits=3, wf_min_train=100,
                         default_spec={"family": "logistic", "train_window_days": 250, "features": LEAN}, **cfg)
    agent = AgentLoop(conn, registry, SubprocessExecutor(2), tmp_path / "exp", config, on_phase=phases.append)
    await agent.start()
    return agent, registry, phases


async def seed_champion(registry, bars):
    x, y = build_features(bars), make_labels(bars)
    model = BaselineModel(ModelSpec("logistic", features=tuple(LEAN), train_window_days=250)).fit(x, y)
    return await registry.register(model, {"in_sample_log_loss": 0.68}, status="champion")


async def test_bad_input_is_journalled_and_champion_keeps_trading(conn, tmp_path):
    bars = synthetic_bars(400, seed=3)
    agent, registry, _ = await make_agent(conn, tmp_path, initial_autonomy=AutonomyLevel.AUTONOMOUS)
    v1 = await seed_champion(registry, bars.iloc[:300])
    # Too little history: features cannot be built.
    res = await agent.run_cycle(day(bars.index[10]), bars.iloc[:10])
    assert res.data_quality is not None and not res.data_quality.ok and res.champion_version == v1
    assert "bars" in res.data_quality.issues[0]
    # NaN in today's bar.
    bad = bars.iloc[:320].copy()
    bad.iloc[-1, bad.columns.get_loc("close")] = np.nan
    res = await agent.run_cycle(day(bad.index[-1]), bad)
    assert not res.data_quality.ok and "NaN" in res.data_quality.issues[0]
    assert res.experiments == () and await registry.champion_version() == v1
    entries = await agent.journal.query(entry_type="data_quality")
    assert len(entries) == 2 and all(e.outcome == "unusable" for e in entries)
    # Stale data: the last bar is far behind the decision date.
    res = await agent.run_cycle(day(bars.index[330]) + dt.timedelta(days=30), bars.iloc[:330])
    assert res.diagnosis is not None and res.diagnosis.kind.value == "data_quality"
    assert res.experiments == () and await registry.champion_version() == v1


async def test_state_persists_across_restart(conn, tmp_path):
    bars = synthetic_bars(420, seed=4)
    agent, registry, _ = await make_agent(conn, tmp_path)
    await seed_champion(registry, bars.iloc[:300])
    for i in range(300, 330):
        await agent.run_cycle(day(bars.index[i]), bars.iloc[: i + 1])
    await agent.set_autonomy("autonomous")
    await agent.pause()
    before = agent.drift.to_dict()
    # A new AgentLoop on the same store resumes the same detector state, autonomy and pause.
    again, _, phases = await make_agent(conn, tmp_path)
    assert again.autonomy is AutonomyLevel.AUTONOMOUS and again.paused and phases[-1] is AgentPhase.PAUSED
    assert again.drift.to_dict() == before
    assert again.state.last_observed == bars.index[329].date().isoformat()
    res = await again.run_cycle(day(bars.index[330]), bars.iloc[:331])
    assert again.state.last_observed == bars.index[330].date().isoformat()
    assert res.experiments == ()
    with pytest.raises(ValueError, match="autonomy level"):
        await again.set_autonomy("reckless")


async def test_pause_and_lockdown_stop_experiments_not_observation(conn, tmp_path):
    bars = synthetic_bars(700, seed=5, coef=0.4, flip_at=402)
    agent, registry, phases = await make_agent(conn, tmp_path, initial_autonomy=AutonomyLevel.AUTONOMOUS)
    boot = await agent.run_cycle(day(bars.index[399]), bars.iloc[:400])  # champion with an OOS reference
    assert boot.promoted is not None
    await agent.set_autonomy(AutonomyLevel.LOCKDOWN)
    notes = []
    for i in range(400, 480):
        res = await agent.run_cycle(day(bars.index[i]), bars.iloc[: i + 1])
        assert res.experiments == ()
        notes += list(res.notes)
    assert any("lockdown" in n for n in notes)
    obs = await agent.journal.query(entry_type="observation", limit=1000)
    assert len(obs) == 80
    await agent.set_autonomy(AutonomyLevel.SUPERVISED)
    await agent.pause()
    for i in range(480, 500):
        res = await agent.run_cycle(day(bars.index[i]), bars.iloc[: i + 1])
        assert res.experiments == ()
    obs_after = await agent.journal.query(entry_type="observation", limit=1000)
    assert len(obs_after) == 100  # observation continued while paused
    blocked = await agent.journal.query(entry_type="hypothesis", outcome="blocked", since=day(bars.index[480]).isoformat(), limit=1000)
    assert all("paused" in e.summary for e in blocked)
    assert [e.outcome for e in await agent.journal.query(entry_type="control")][-1] == "paused"
    assert AgentPhase.OBSERVING in phases and agent.phase is AgentPhase.PAUSED
    with pytest.raises(RegistryError, match="awaiting approval"):
        await agent.approve()


async def test_autonomous_bootstrap_promotes_directly(conn, tmp_path):
    bars = synthetic_bars(400, seed=6)
    agent, registry, _ = await make_agent(conn, tmp_path, initial_autonomy=AutonomyLevel.AUTONOMOUS)
    res = await agent.run_cycle(day(bars.index[-1]), bars)
    assert res.promoted is not None and res.champion_version == res.promoted
    assert await registry.champion_version() == res.promoted
    assert [e.outcome for e in await agent.journal.query(entry_type="decision")] == ["promoted"]


def test_agent_package_imports_neither_textual_nor_sim():
    code = (
        "import sys, hydra_engine.agent.loop, hydra_engine.agent.experiment_worker; "
        "bad = [m for m in sys.modules if m.startswith(('textual', 'hydra_tui', 'hydra_engine.sim'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


async def test_state_store_rejects_corrupt_row(conn):
    store = AgentStateStore(conn)
    await store.save(AgentState())
    assert (await store.load()).autonomy is AutonomyLevel.SUPERVISED
    await conn.execute("UPDATE agent_state SET value = '{bad' WHERE key = 'agent'")
    await conn.commit()
    with pytest.raises(ValueError, match="invalid JSON"):
        await store.load()


async def test_automatic_rollback_when_new_champion_trails_predecessor(conn, tmp_path):
    from hydra_engine.agent.rollback import RollbackConfig

    bars = synthetic_bars(700, seed=8, coef=0.4, flip_at=300)
    agent, registry, _ = await make_agent(
        conn, tmp_path, initial_autonomy=AutonomyLevel.AUTONOMOUS,
        rollback=RollbackConfig(patience_days=5, window_days=10, min_days=5, enter_margin=0.01, cooldown_days=30),
    )
    x, y = build_features(bars), make_labels(bars)
    spec = ModelSpec("logistic", features=tuple(LEAN), train_window_days=250)
    good = BaselineModel(spec).fit(x.iloc[:560], y.loc[x.index[:560]])  # learned the post-flip relation
    bad = BaselineModel(spec).fit(x.iloc[:290], y.loc[x.index[:290]])  # still believes the old one
    v_good = await registry.register(good, status="champion")
    v_bad = await registry.register(bad, parent=v_good)
    await registry.promote(v_bad)
    agent.rollback_monitor.start_watch(v_bad, v_good)
    rolled = None
    for i in range(560, 640):
        res = await agent.run_cycle(day(bars.index[i]), bars.iloc[: i + 1])
        if res.rolled_back:
            rolled = (i, res)
            break
    assert rolled is not None, "the trailing champion was never rolled back"
    i, res = rolled
    assert res.rolled_back == v_good and await registry.champion_version() == v_good
    entry = (await agent.journal.query(entry_type="rollback"))[-1]
    assert entry.outcome == "automatic" and entry.payload["restored"] == v_good
    assert agent.rollback_monitor.in_cooldown(day(bars.index[i]) + dt.timedelta(days=1))
    nxt = await agent.run_cycle(day(bars.index[i + 1]), bars.iloc[: i + 2])
    assert nxt.champion_version == v_good  # the predecessor trades from the next signal


async def test_broken_champion_files_are_journalled_not_raised(conn, tmp_path):
    import shutil

    bars = synthetic_bars(400, seed=9)
    agent, registry, _ = await make_agent(conn, tmp_path)
    v1 = await seed_champion(registry, bars.iloc[:300])
    registry._cached = None
    shutil.rmtree(tmp_path / "models" / v1)
    res = await agent.run_cycle(day(bars.index[320]), bars.iloc[:321])
    assert res.cycle_id == "failed" and "champion keeps trading" in res.notes[0]
    errors = await agent.journal.query(entry_type="error")
    assert errors and errors[-1].outcome == "cycle_failed" and v1 in errors[-1].summary


async def test_late_experiments_continue_in_background_without_blocking_the_cycle(conn, tmp_path):
    bars = synthetic_bars(700, seed=5, coef=0.4, flip_at=402)
    # experiments from the first alarm on (not after the evidence since it): this is about the background
    agent, registry, _ = await make_agent(conn, tmp_path, initial_autonomy=AutonomyLevel.AUTONOMOUS, experiment_wait_s=0.05,
                                          evidence_since_alarm=False)
    boot = await agent.run_cycle(day(bars.index[399]), bars.iloc[:400])  # bootstrap waits: no champion yet
    assert boot.promoted is not None
    started = None
    for i in range(400, 480):
        t = asyncio.get_running_loop().time()
        res = await agent.run_cycle(day(bars.index[i]), bars.iloc[: i + 1])
        if res.experiments_running:
            started = (i, res, asyncio.get_running_loop().time() - t)
            break
    assert started is not None, "no experiment was started"
    i, res, took = started
    assert res.phase is AgentPhase.EXPERIMENTING and res.experiments == () and took < 5.0
    nxt = await agent.run_cycle(day(bars.index[i + 1]), bars.iloc[: i + 2])
    assert nxt.experiments == ()
    outcomes = await agent.wait_background(timeout=90)
    assert outcomes and all(o.status in ("OK", "ERROR", "TIMEOUT") for o in outcomes)
    journalled = {e.payload["experiment_id"] for e in await agent.journal.query(entry_type="experiment", limit=1000)}
    assert {o.experiment_id for o in outcomes} <= journalled


async def test_writes_go_through_the_store_write_gate(conn, tmp_path):
    from hydra_engine.agent.journal import ExperimentJournal
    from hydra_engine.store.lock import WriteGate

    gate = WriteGate(conn)
    journal = ExperimentJournal(conn, gate)
    states = AgentStateStore(conn, gate)
    async with gate.transaction() as c:  # another writer's open transaction on the shared connection
        await c.execute("INSERT INTO agent_state (key, value, updated_at) VALUES ('other', '{}', 'now')")
        pending = asyncio.create_task(journal.record("control", "queued behind the gate", outcome="x"))
        await asyncio.sleep(0.05)
        assert not pending.done()  # it waits for the gate instead of committing someone else's work
    await pending
    await states.save(AgentState(paused=True))
    assert (await states.load()).paused
    assert [e.summary for e in await journal.query(entry_type="control")] == ["queued behind the gate"]
