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
