"""Cycles: one per (market, trading date), even under concurrent claims; interrupted recovery."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import pytest

from hydra_engine.clock import ManualClock
from hydra_engine.store.cycles import CycleStatus
from hydra_engine.store.database import Store

D = date(2026, 3, 2)


async def test_claim_is_unique_per_market_and_date(store: Store) -> None:
    assert await store.cycles.claim("CL", D, "schedule")
    assert not await store.cycles.claim("CL", D, "catch-up")
    assert await store.cycles.claim("ZO", D)
    assert await store.cycles.claim("CL", D + timedelta(days=1))
    rec = await store.cycles.get("CL", D)
    assert rec is not None and rec.status == CycleStatus.RUNNING and rec.trigger == "schedule"
    assert rec.attempts == 1 and rec.summary is None


async def test_concurrent_claims_on_one_connection(store: Store) -> None:
    results = await asyncio.gather(*(store.cycles.claim("CL", D, f"t{i}") for i in range(25)))
    assert results.count(True) == 1


async def test_concurrent_claims_from_two_connections(tmp_path: Path) -> None:
    a = await Store.open(tmp_path, "sim", "DU1")
    b = await Store.open(tmp_path, "sim", "DU1", lock=False)
    try:
        claims = [a.cycles.claim("CL", D + timedelta(days=i)) for i in range(10)]
        claims += [b.cycles.claim("CL", D + timedelta(days=i)) for i in range(10)]
        results = await asyncio.gather(*claims)
        for i in range(10):
            assert [results[i], results[10 + i]].count(True) == 1
    finally:
        await a.close()
        await b.close()


async def test_finish_with_summary_and_recent(store: Store, clock: ManualClock) -> None:
    await store.cycles.claim("CL", D)
    clock.advance(timedelta(minutes=3))
    await store.cycles.finish("CL", D, {"signal": 1, "n_fills": 2, "day": D})
    await store.cycles.claim("CL", D + timedelta(days=1))
    await store.cycles.finish("CL", D + timedelta(days=1), {"reason": "no data"}, "SKIPPED")
    await store.cycles.claim("ZO", D)
    rec = await store.cycles.get("CL", D)
    assert rec is not None and rec.status == CycleStatus.FINISHED
    assert rec.summary == {"signal": 1, "n_fills": 2, "day": "2026-03-02"}
    assert rec.finished_at == clock.now()
    assert [(c.market, c.trading_date) for c in await store.cycles.recent(market="CL")] == [
        ("CL", D + timedelta(days=1)), ("CL", D)]
    assert len(await store.cycles.recent(limit=2)) == 2
    last = await store.cycles.last_finished("CL")
    assert last is not None and last.trading_date == D
    with pytest.raises(LookupError, match="ZO on 2026-03-03"):
        await store.cycles.finish("ZO", D + timedelta(days=1))
    with pytest.raises(ValueError):
        await store.cycles.finish("ZO", D, status="RUNNING")


async def test_interrupted_cycle_is_reclaimed_once(tmp_path: Path) -> None:
    first = await Store.open(tmp_path, "sim", "DU1")
    await first.cycles.claim("CL", D)
    assert await first.cycles.interrupted() == []  # our own running cycle is not interrupted
    await first.close()  # the engine "dies" without finishing
    second = await Store.open(tmp_path, "sim", "DU1")
    try:
        stale = await second.cycles.interrupted()
        assert [(c.market, c.trading_date) for c in stale] == [("CL", D)]
        assert not await second.cycles.claim("CL", D)
        assert await second.cycles.reclaim("CL", D)
        assert not await second.cycles.reclaim("CL", D)
        rec = await second.cycles.get("CL", D)
        assert rec is not None and rec.attempts == 2 and rec.trigger == "recovery"
        assert await second.cycles.interrupted() == []
    finally:
        await second.close()
