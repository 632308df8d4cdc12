"""Equity marks, the persisted peak and the journalled reset-peak command."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hydra_engine.clock import ManualClock
from hydra_engine.store.database import Store
from hydra_engine.store.ops_journal import OpsKind


async def test_marks_and_previous_trading_date(store: Store) -> None:
    await store.equity.record_mark(date(2026, 2, 27), 100_000)
    await store.equity.record_mark(date(2026, 3, 2), 101_500)
    await store.equity.record_mark(date(2026, 3, 2), 101_000)  # a later close replaces the mark
    prev = await store.equity.previous_mark(date(2026, 3, 3))
    assert prev is not None and prev.trading_date == date(2026, 3, 2) and prev.net_liquidation == 101_000
    prev = await store.equity.previous_mark(date(2026, 3, 2))
    assert prev is not None and prev.trading_date == date(2026, 2, 27)
    assert await store.equity.previous_mark(date(2026, 2, 27)) is None
    assert [m.net_liquidation for m in await store.equity.marks()] == [100_000, 101_000]
    assert [m.trading_date for m in await store.equity.marks(limit=1)] == [date(2026, 3, 2)]
    latest = await store.equity.latest_mark()
    assert latest is not None and latest.trading_date == date(2026, 3, 2)
    with pytest.raises(ValueError, match="finite"):
        await store.equity.record_mark(date(2026, 3, 3), float("nan"))


async def test_peak_only_rises_and_persists_across_reopen(tmp_path: Path, clock: ManualClock) -> None:
    s = await Store.open(tmp_path, "sim", "DU1", clock=clock)
    assert await s.equity.peak() is None
    await s.equity.record_mark(date(2026, 3, 2), 100_000)
    await s.equity.record_mark(date(2026, 3, 3), 98_000)
    assert (await s.equity.update_peak(99_000)).peak == 100_000
    await s.equity.record_mark(date(2026, 3, 4), 103_000)
    await s.close()
    s = await Store.open(tmp_path, "sim", "DU1", clock=clock)
    try:
        peak = await s.equity.peak()
        assert peak is not None and peak.peak == 103_000 and peak.trading_date == date(2026, 3, 4)
    finally:
        await s.close()


async def test_reset_peak_is_journalled(store: Store, clock: ManualClock) -> None:
    await store.equity.record_mark(date(2026, 3, 2), 120_000)
    rec = await store.equity.reset_peak(100_000, "paper account reset", actor="cli")
    assert rec.peak == 100_000 and rec.reason == "reset: paper account reset"
    peak = await store.equity.peak()
    assert peak is not None and peak.peak == 100_000 and peak.updated_at == clock.now()
    entries = await store.ops.recent(kind=OpsKind.COMMAND)
    assert len(entries) == 1
    e = entries[0]
    assert e.command == "reset-peak" and e.actor == "cli" and e.at == clock.now()
    assert e.detail == {"old_peak": 120_000, "new_peak": 100_000, "reason": "paper account reset"}
    # After a reset the peak rises again from the new value.
    await store.equity.record_mark(date(2026, 3, 3), 100_500)
    peak = await store.equity.peak()
    assert peak is not None and peak.peak == 100_500


@pytest.mark.parametrize("value, reason, msg", [(0, "x", "new_peak"), (float("inf"), "x", "new_peak"),
                                                (1000, "  ", "reason")])
async def test_reset_peak_rejects_bad_input(store: Store, value: float, reason: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        await store.equity.reset_peak(value, reason)
    assert await store.ops.recent() == []
    assert await store.equity.peak() is None
