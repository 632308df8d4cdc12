"""IB Gateway's daily restart window: parsing and arithmetic (midnight, daylight saving), the
settings that name it, and the runner holding a scheduled cycle until the window ends, on the
runner's own clock seam (a ManualClock) with the real engine's parts behind it."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hydra_engine.clock import ManualClock
from hydra_engine.config import ConfigError, load_settings
from hydra_engine.engine import Engine
from hydra_engine.events import CycleStarted, EventBus
from hydra_engine.execution.runner import PaperTradingRunner
from hydra_engine.operations.restart_window import RestartWindow
from hydra_engine.operations.service import gateway_window

UTC = dt.timezone.utc


def test_a_window_across_midnight_in_new_york() -> None:
    w = RestartWindow.parse("23:45-00:05", "America/New_York")
    assert w is not None and str(w) == "23:45-00:05 America/New_York"
    winter = dt.datetime(2026, 1, 15, 4, 50, tzinfo=UTC)  # 23:50 EST
    assert w.contains(winter)
    assert w.end_after(winter) == dt.datetime(2026, 1, 15, 5, 5, tzinfo=UTC)
    assert w.contains(dt.datetime(2026, 1, 15, 5, 0, tzinfo=UTC))  # 00:00 EST
    assert not w.contains(dt.datetime(2026, 1, 15, 5, 5, tzinfo=UTC))  # the end is outside
    assert not w.contains(dt.datetime(2026, 1, 15, 4, 40, tzinfo=UTC))
    summer = dt.datetime(2026, 7, 15, 3, 50, tzinfo=UTC)  # 23:50 EDT: the window follows daylight saving
    assert w.contains(summer) and w.end_after(summer) == dt.datetime(2026, 7, 15, 4, 5, tzinfo=UTC)
    outside = dt.datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
    assert w.defer(outside) == outside and w.defer(summer) == w.end_after(summer)
    assert w.end_after(outside) == dt.datetime(2026, 7, 16, 4, 5, tzinfo=UTC)


def test_a_window_within_one_day() -> None:
    w = RestartWindow.parse("13:55-14:10", "America/Chicago")
    assert w.contains(dt.datetime(2026, 1, 15, 20, 0, tzinfo=UTC))  # 14:00 CST
    assert not w.contains(dt.datetime(2026, 1, 15, 20, 10, tzinfo=UTC))
    assert RestartWindow.parse("", "America/Chicago") is None


@pytest.mark.parametrize("text, zone, words", [
    ("23:45", "America/New_York", "HH:MM-HH:MM"),
    ("24:00-00:05", "America/New_York", "not a time of day"),
    ("23:45-23:45", "America/New_York", "empty"),
    ("23:45-00:05", "Mars/Olympus", "IANA"),
])
def test_bad_windows_are_refused_with_the_key(text: str, zone: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        load_settings(None, {"broker.restart_window": text, "broker.restart_time_zone": zone})
    assert err.value.key in ("broker.restart_window", "broker.restart_time_zone")


def test_the_window_applies_to_an_ib_gateway_only() -> None:
    assert gateway_window(load_settings(None)) is None  # the embedded exchange never restarts by itself
    ib = load_settings(None, {"broker.kind": "ib", "broker.port": 4002})
    assert str(gateway_window(ib)) == "23:45-00:05 America/New_York"
    assert gateway_window(load_settings(None, {"broker.kind": "ib", "broker.port": 4002,
                                               "broker.restart_window": ""})) is None


async def test_a_cycle_due_inside_the_window_waits_until_it_ends(tmp_path: Path, sim_universe: Any) -> None:
    eng = Engine(load_settings(None), data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        zo = eng.settings.market("ZO")  # decides at 14:00 Chicago
        window = RestartWindow.parse("13:55-14:10", "America/Chicago")
        decision = dt.datetime(2018, 1, 3, 20, 0, tzinfo=UTC)  # Wednesday 14:00 CST
        clock = ManualClock(decision)
        bus = EventBus()
        started = bus.subscribe(types=(CycleStarted,))
        runner = PaperTradingRunner(
            eng.broker, eng.risk_gate, eng.order_manager, eng.fill_journal, None, eng.champion, eng.reconciler,
            None, store=eng.store, markets=[zo], clock=clock, bus=bus, restart_window=window,
        )
        await runner.start(schedule=False)
        await runner.pause("test: no orders")  # the timing is under test, not the trade
        task = runner.trigger("ZO", trigger="schedule")
        await clock.wait_for_sleepers(1)
        await asyncio.sleep(0.05)
        assert not task.done() and started.get_nowait() is None
        assert await eng.store.cycles.get("ZO", dt.date(2018, 1, 3)) is None  # not even claimed
        end = dt.datetime(2018, 1, 3, 20, 10, tzinfo=UTC)
        clock.set(end - dt.timedelta(seconds=1))
        await asyncio.sleep(0.05)
        assert not task.done()
        clock.set(end)
        summary = await asyncio.wait_for(task, 60)
        assert summary["trading_date"] == "2018-01-03" and summary["trigger"] == "schedule"
        event = started.get_nowait()
        assert event is not None and event.at == end and event.trading_date == dt.date(2018, 1, 3)
        # an operator's force is never held back
        clock.set(dt.datetime(2018, 1, 4, 19, 57, tzinfo=UTC))  # Thursday 13:57 CST, inside the window
        forced = await asyncio.wait_for(runner.run_daily_cycle("ZO", force=True), 60)
        assert forced["trading_date"] == "2018-01-04" and started.get_nowait().at == clock.now()
        await runner.stop()
    finally:
        await eng.stop()
