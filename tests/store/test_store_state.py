"""Bars, key-value state and the operator journal."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hydra_engine.clock import ManualClock
from hydra_engine.store import kv as keys
from hydra_engine.store.bars import BarRow
from hydra_engine.store.database import Store
from hydra_engine.store.ops_journal import OpsKind


def bar(d: date, c: float) -> BarRow:
    return BarRow(date=d, open=c - 0.5, high=c + 1, low=c - 1, close=c, volume=1200, wap=c, bar_count=300)


async def test_bars_upsert_latest_and_load(store: Store) -> None:
    days = [date(2026, 3, 2) + timedelta(days=i) for i in range(5)]
    assert await store.bars.upsert("CL", "CONTFUT", [bar(d, 70 + i) for i, d in enumerate(days)]) == 5
    assert await store.bars.latest_date("CL") == days[-1]
    assert await store.bars.latest_date("ZO") is None
    # Revised settlement replaces the row; other forms of bars are accepted.
    ib_like = SimpleNamespace(date=days[-1], open=1, high=80, low=0.5, close=79.5, volume=10, average=79.0,
                              barCount=5)
    await store.bars.upsert("CL", "CONTFUT", [ib_like])
    await store.bars.upsert("CL", "202605", [{"date": "20260302", "open": 1, "high": 2, "low": 1, "close": 2}])
    df = await store.bars.load("CL")
    assert list(df.columns) == ["open", "high", "low", "close", "volume", "wap", "bar_count"]
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.name == "date"
    assert list(df.index.date) == days and df.index.is_monotonic_increasing
    assert df["close"].iloc[-1] == 79.5 and df["wap"].iloc[-1] == 79.0
    assert len(await store.bars.load("CL", limit=2)) == 2
    assert list((await store.bars.load("CL", start=days[1], end=days[2])).index.date) == days[1:3]
    assert await store.bars.contracts("CL") == ["202605", "CONTFUT"]
    assert await store.bars.count("CL", "202605") == 1
    single = await store.bars.load("CL", "202605")
    assert np.isnan(single["wap"].iloc[0])
    empty = await store.bars.load("NOPE")
    assert empty.empty and list(empty.columns) == list(df.columns)


async def test_bars_round_trip_a_dataframe(store: Store) -> None:
    idx = pd.DatetimeIndex(pd.to_datetime(["2026-03-02", "2026-03-03"]), name="date")
    frame = pd.DataFrame({"open": [1.0, 2.0], "high": [2.0, 3.0], "low": [0.5, 1.5], "close": [1.5, 2.5],
                          "volume": [10.0, 20.0], "wap": [1.4, 2.4], "bar_count": [3.0, 4.0]}, index=idx)
    assert await store.bars.upsert("ZO", "CONTFUT", frame) == 2
    pd.testing.assert_frame_equal(await store.bars.load("ZO"), frame)


async def test_bad_bar_names_market_and_date_and_writes_nothing(store: Store) -> None:
    rows = [bar(date(2026, 3, 2), 70), BarRow(date(2026, 3, 3), 1, high=1, low=2, close=1)]
    with pytest.raises(ValueError, match="CL/CONTFUT 2026-03-03: high 1 is below low 2"):
        await store.bars.upsert("CL", "CONTFUT", rows)
    with pytest.raises(ValueError, match="close = nan"):
        await store.bars.upsert("CL", "CONTFUT", [BarRow(date(2026, 3, 2), 1, 2, 0, float("nan"))])
    assert await store.bars.count("CL") == 0


async def test_kv_typed_state_persists(tmp_path: Path, clock: ManualClock) -> None:
    s = await Store.open(tmp_path, "sim", "DU1", clock=clock)
    assert await s.kv.get(keys.PAUSED) is False
    assert await s.kv.get(keys.CLIENT_ID) is None
    await s.kv.set(keys.PAUSED, True)
    await s.kv.set(keys.AUTONOMY_LEVEL, "lockdown")
    await s.kv.set(keys.CLIENT_ID, 7)
    await s.kv.set_raw("agent.detectors", {"cusum": {"s": 1.5}})
    with pytest.raises(TypeError, match="'paused' holds bool"):
        await s.kv.set(keys.PAUSED, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="client_id"):
        await s.kv.set(keys.CLIENT_ID, True)  # type: ignore[arg-type]
    await s.close()
    s = await Store.open(tmp_path, "sim", "DU1", clock=clock)
    try:
        assert await s.kv.get(keys.PAUSED) is True
        assert await s.kv.get(keys.AUTONOMY_LEVEL) == "lockdown"
        assert await s.kv.get(keys.CLIENT_ID) == 7
        assert await s.kv.get_raw("agent.detectors") == {"cusum": {"s": 1.5}}
        assert await s.kv.delete("agent.detectors") and not await s.kv.delete("agent.detectors")
        await s.kv.set_raw("paused", "yes")  # written by something else with the wrong type
        with pytest.raises(ValueError, match="'paused' is unreadable"):
            await s.kv.get(keys.PAUSED)
        ratio = keys.StateKey("ratio", float, 0.5)
        await s.kv.set(ratio, 2)
        assert await s.kv.get(ratio) == 2.0
    finally:
        await s.close()


async def test_ops_journal(store: Store, clock: ManualClock) -> None:
    await store.ops.command("pause", "paused by operator", detail={"reason": "news"})
    clock.advance(timedelta(minutes=1))
    await store.ops.position_change("CLK6", expected=1, actual=2, detail={"con_id": 1001})
    clock.advance(timedelta(minutes=1))
    await store.ops.record(OpsKind.SAFETY, "live confirmed", actor="tui", detail={"when": date(2026, 3, 2)})
    recent = await store.ops.recent()
    assert [e.kind for e in recent] == ["SAFETY", "POSITION_CHANGE", "COMMAND"]
    assert recent[0].detail == {"when": "2026-03-02"}
    pos = recent[1]
    assert pos.detail == {"symbol": "CLK6", "expected": 1, "actual": 2, "con_id": 1001}
    assert "journal explains 1, broker reports 2" in pos.message
    assert [e.command for e in await store.ops.recent(kind="COMMAND")] == ["pause"]
    since = clock.now() - timedelta(seconds=30)
    assert [e.kind for e in await store.ops.recent(since=since)] == ["SAFETY"]
    assert recent[2].at == datetime(2026, 3, 2, 20, 0, tzinfo=timezone.utc)
