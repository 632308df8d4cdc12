"""A different fill under a known execId is an alarm (issue 13, item 2): journalled, persisted per
market for ``status``, trading for that market waits until an operator clears it. An identical
duplicate stays a silent no-op. Real Store on a real SQLite file."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hydra_engine.execution.desk import ExecutionDesk
from hydra_engine.execution.fill_journal import FillJournal, FillRecord
from hydra_engine.store.database import Store
from hydra_engine.store.fill_conflicts import FILL_CONFLICT_KIND

T0 = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)


def rec(i: int = 1, **kw: Any) -> FillRecord:
    base: dict[str, Any] = dict(exec_id=f"0000e1.{i:06d}.01.01", fill_time=T0 + dt.timedelta(seconds=i),
                                symbol="CL", contract_month="202701", direction="BUY", qty=1.0, fill_price=70.03,
                                arrival_mid=70.0, predicted_slippage=0.02, order_ref=f"H-CL-{i}", perm_id=1000 + i)
    base.update(kw)
    return FillRecord(**base)


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open_path(tmp_path / "hydra.db", "DU123", lock=False)
    yield s
    await s.close()


async def test_identical_duplicate_is_a_silent_no_op(store: Store) -> None:
    j = FillJournal(store.conn, tx=store.tx)
    assert await j.log_fill(rec()) is True
    assert await j.log_fill(rec()) is False
    assert await store.fill_conflicts.open_conflicts() == []
    assert await store.ops.recent(kind=FILL_CONFLICT_KIND) == []
    assert not await store.fill_conflicts.blocked("CL")


@pytest.mark.parametrize("change,field", [
    (dict(qty=2.0), "qty"), (dict(fill_price=70.5), "fill_price"), (dict(direction="SELL", arrival_mid=None), "direction"),
    (dict(contract_month="202702"), "contract_month"), (dict(symbol="ZC", fill_price=450.0, arrival_mid=None), "symbol"),
])
async def test_conflicting_duplicate_is_journalled_and_blocks_the_market(store: Store, change: dict[str, Any],
                                                                         field: str) -> None:
    j = FillJournal(store.conn, tx=store.tx)
    assert await j.log_fill(rec()) is True
    assert await j.log_fill(rec(**change)) is False  # the journalled fill stays as it was
    [c] = await store.fill_conflicts.open_conflicts()
    assert c.exec_id == rec().exec_id and field in c.differences and c.symbol == "CL"
    assert c.journalled[field] == getattr(rec(), field) and c.reported[field] == getattr(rec(**change), field)
    [entry] = await store.ops.recent(kind=FILL_CONFLICT_KIND)
    assert rec().exec_id in entry.message and entry.detail["symbol"] == "CL"
    assert await store.fill_conflicts.blocked("CL") and await store.fill_conflicts.blocked_markets() == {"CL"}
    assert not await store.fill_conflicts.blocked("HO")
    [stored] = [f for f in await j.fills() if f.exec_id == rec().exec_id]
    assert stored == rec()


async def test_conflict_found_in_a_group_commit_batch(store: Store) -> None:
    import asyncio

    j = FillJournal(store.conn, group_commit=True, tx=store.tx)
    assert await j.log_fill(rec()) is True
    res = await asyncio.gather(j.log_fill(rec(2)), j.log_fill(rec(qty=3.0)), j.log_fill(rec(3)))
    assert res == [True, False, True]
    assert [c.differences for c in await store.fill_conflicts.open_conflicts()] == [("qty",)]


async def test_alarm_persists_across_restart_until_cleared(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    s = await Store.open_path(path, "DU123", lock=False)
    await FillJournal(s.conn, tx=s.tx).log_fill(rec())
    await FillJournal(s.conn, tx=s.tx).log_fill(rec(qty=5.0))
    await s.close()
    with sqlite3.connect(path) as raw:  # what a read-only `status` sees: a query on the file
        assert raw.execute("SELECT symbol FROM fill_conflicts WHERE cleared_at IS NULL").fetchall() == [("CL",)]
    s = await Store.open_path(path, "DU123", lock=False)
    try:
        assert await s.fill_conflicts.blocked("CL")
        assert await s.fill_conflicts.clear("CL", actor="tester", note="broker statement checked") == 1
        assert not await s.fill_conflicts.blocked("CL")
        [cleared] = await s.fill_conflicts.all()
        assert cleared.cleared_by == "tester" and not cleared.open
        kinds = [(e.kind, e.command) for e in await s.ops.recent(kind=FILL_CONFLICT_KIND)]
        assert kinds == [(FILL_CONFLICT_KIND, "clear-fill-conflict"), (FILL_CONFLICT_KIND, "")]
        assert await s.fill_conflicts.clear("CL") == 0
    finally:
        await s.close()


class _Router:
    def __init__(self) -> None:
        self.moves: list[str] = []

    async def move_to_target(self, m: Any, target: int, **kw: Any) -> Any:
        self.moves.append(m.symbol)
        return SimpleNamespace(filled=0, reasons=())

    async def wait_idle(self, *a: Any, **kw: Any) -> None:
        return None


async def test_desk_sends_nothing_for_a_market_with_an_open_alarm(store: Store) -> None:
    from hydra_engine.clock import WallClock

    j = FillJournal(store.conn, tx=store.tx)
    await j.log_fill(rec())
    await j.log_fill(rec(fill_price=71.0))
    router = _Router()
    cfg = SimpleNamespace(wait_for_session=False, liquid_hours_only=False, submit_timeout_s=1.0)
    desk = ExecutionDesk(broker=None, order_manager=router, store=store, clock=WallClock(), config=cfg)  # type: ignore[arg-type]
    from hydra_engine.markets import market_from_catalog

    cl = market_from_catalog("CL")
    out = await desk.start(cl, T0.date(), 2, None)  # type: ignore[arg-type]
    assert "conflicting fill" in out and router.moves == [] and "CL" not in desk.tickets
    await store.fill_conflicts.clear("CL")
    await desk.start(cl, T0.date(), 2, None)  # type: ignore[arg-type]
    await desk.tickets["CL"].task
    assert router.moves == ["CL"]
