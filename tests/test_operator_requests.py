"""The operator-request inbox: a request written by another connection is executed by the running
engine within a few seconds, journalled with its actor, and shown in the status snapshot."""

from __future__ import annotations

import asyncio

import aiosqlite

from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_engine.operator_requests import read_snapshot, submit, wait_outcome, withdraw


async def test_pause_and_resume_requests_reach_the_running_engine(tmp_path, sim_universe) -> None:
    engine = Engine(load_settings(None, {}), data_dir=tmp_path, universe=sim_universe, agent=False)
    await engine.start()
    try:
        db = engine.store.path
        rid = await submit(db, "pause", {"reason": "test"}, actor="cli:test")
        req = await wait_outcome(db, rid, timeout_s=10)
        assert req is not None and req.status == "DONE", req
        assert "paused" in req.outcome and engine.status().paused
        ops = await engine.store.ops.recent(20)
        assert any(e.command == "pause" and e.actor == "cli:test" for e in ops)
        conn = await aiosqlite.connect(db)
        try:
            snap = await read_snapshot(conn)
        finally:
            await conn.close()
        assert snap is not None and snap.data["engine"]["paused"] is True and snap.age_s() < 10

        rid = await submit(db, "resume", actor="cli:test")
        req = await wait_outcome(db, rid, timeout_s=10)
        assert req is not None and req.status == "DONE" and not engine.status().paused

        bad = await submit(db, "rollback", {"reason": ""}, actor="cli:test")  # refused by the engine: FAILED
        req = await wait_outcome(db, bad, timeout_s=10)
        assert req is not None and req.status == "FAILED" and "reason" in req.outcome
    finally:
        await engine.stop()
    conn = await aiosqlite.connect(db)
    try:
        snap = await read_snapshot(conn)
    finally:
        await conn.close()
    assert snap is not None and snap.data["stopped"] is True


async def test_a_request_nobody_takes_can_be_withdrawn(tmp_path, sim_universe) -> None:
    engine = Engine(load_settings(None, {}), data_dir=tmp_path, universe=sim_universe, agent=False)
    await engine.start()
    db = engine.store.path
    await engine.stop()  # the store exists, no engine polls it
    rid = await submit(db, "pause")
    assert await wait_outcome(db, rid, timeout_s=0.5) is None
    assert await withdraw(db, rid)
    req = await wait_outcome(db, rid, timeout_s=0.5)
    assert req is not None and req.status == "FAILED" and "withdrawn" in req.outcome
    await asyncio.sleep(0)


async def test_approve_and_rollback_requests_carry_the_market(tmp_path, sim_universe) -> None:
    """A candidate waits in ZO only: approve {"market": "ZO"} promotes it and leaves CL's champion
    alone; rollback {"market": "ZO"} puts ZO's previous champion back; rollback without a market is
    refused by the engine (each market has its own champion), and the outcome says why."""
    from hydra_engine.agent.state import AgentState, AgentStateStore, state_key

    settings = load_settings(None, {})
    first = Engine(settings, data_dir=tmp_path, universe=sim_universe)
    await first.start()  # bootstraps a champion per market
    try:
        zo = first.registry.for_market("ZO")
        champion = await zo.champion_version()
        candidate = await zo.register(await zo.load(champion), {"test": True}, parent=champion, mutation="retrain_recent")
        cl_champion = await first.registry.for_market("CL").champion_version()
    finally:
        await first.stop()
    from hydra_engine.store.database import Store

    store = await Store.open(tmp_path, "sim", "DU1234567")
    try:
        states = AgentStateStore(store.conn, store.tx, key=state_key("ZO"))
        state = await states.load() or AgentState()  # no cycle ran yet: a fresh record
        state.pending = {"version": candidate, "experiment_id": "exp-test", "hypothesis_key": "retrain_recent",
                         "trading_date": "2018-01-02", "previous": champion}
        await states.save(state)
    finally:
        await store.close()

    engine = Engine(settings, data_dir=tmp_path, universe=sim_universe)
    await engine.start()
    try:
        db = engine.store.path
        req = await wait_outcome(db, await submit(db, "approve", {"market": "ZO"}, actor="cli:test"), timeout_s=10)
        assert req is not None and req.status == "DONE", req
        assert candidate in req.outcome and "ZO" in req.outcome
        assert await engine.registry.for_market("ZO").champion_version() == candidate
        assert await engine.registry.for_market("CL").champion_version() == cl_champion

        req = await wait_outcome(db, await submit(db, "rollback", {"reason": "test"}, actor="cli:test"), timeout_s=10)
        assert req is not None and req.status == "FAILED" and "name the market" in req.outcome, req

        req = await wait_outcome(db, await submit(db, "rollback", {"reason": "test", "market": "ZO"}, actor="cli:test"),
                                 timeout_s=10)
        assert req is not None and req.status == "DONE", req
        assert f"{candidate} -> {champion} (ZO)" in req.outcome
        assert await engine.registry.for_market("ZO").champion_version() == champion
        ops = [e for e in await engine.store.ops.recent(50) if e.actor == "cli:test"]
        assert [e.command for e in ops][:3] == ["rollback", "rollback", "approve"]
    finally:
        await engine.stop()
