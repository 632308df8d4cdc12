"""SimClock: lock-step set/sleep_until wake-ups, fixed speed and real time."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from hydra_engine.sim.clock import SimClock

UTC = dt.timezone.utc
T0 = dt.datetime(2018, 1, 2, 12, 0, tzinfo=UTC)


def test_lockstep_stands_still_until_set() -> None:
    clock = SimClock.lockstep(T0)
    assert clock.mode == "lockstep"
    assert clock.now() == T0
    clock.set(T0 + dt.timedelta(hours=3))
    assert clock.now() == T0 + dt.timedelta(hours=3)
    assert clock.advance(dt.timedelta(minutes=5)) == T0 + dt.timedelta(hours=3, minutes=5)


def test_lockstep_never_goes_backwards() -> None:
    clock = SimClock.lockstep(T0)
    clock.set(T0 + dt.timedelta(days=1))
    with pytest.raises(ValueError, match="backwards"):
        clock.set(T0)
    assert clock.now() == T0 + dt.timedelta(days=1)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock.lockstep(dt.datetime(2018, 1, 2))
    with pytest.raises(ValueError, match="speed"):
        SimClock.fixed_speed(T0, 0)
    with pytest.raises(RuntimeError, match="lockstep"):
        SimClock.realtime().set(T0)


async def test_lockstep_waiters_wake_in_time_order_when_set_passes_them() -> None:
    clock = SimClock.lockstep(T0)
    woke: list[tuple[str, dt.datetime]] = []

    async def waiter(name: str, at: dt.datetime) -> None:
        await clock.sleep_until(at)
        woke.append((name, clock.now()))

    t1, t2 = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=5)
    tasks = [asyncio.create_task(waiter("late", t2)), asyncio.create_task(waiter("early", t1))]
    while clock.pending_waiters < 2:
        await asyncio.sleep(0)
    assert clock.next_wakeup() == t1
    clock.set(T0 + dt.timedelta(hours=2))
    await asyncio.wait_for(tasks[1], timeout=2)
    assert woke == [("early", T0 + dt.timedelta(hours=2))]
    assert not tasks[0].done()
    clock.set(t2)
    await asyncio.wait_for(tasks[0], timeout=2)
    assert [w[0] for w in woke] == ["early", "late"]
    assert clock.pending_waiters == 0


async def test_lockstep_sleep_until_past_returns_at_once_and_cancel_cleans_up() -> None:
    clock = SimClock.lockstep(T0)
    await asyncio.wait_for(clock.sleep_until(T0 - dt.timedelta(seconds=1)), timeout=1)
    task = asyncio.create_task(clock.sleep_until(T0 + dt.timedelta(days=1)))
    while clock.pending_waiters < 1:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending_waiters == 0
    assert clock.next_wakeup() is None


async def test_fixed_speed_runs_faster_than_real_time() -> None:
    speed = 600.0
    clock = SimClock.fixed_speed(T0, speed)
    assert clock.mode == "fixed_speed"
    wall0, sim0 = time.monotonic(), clock.now()
    target = sim0 + dt.timedelta(seconds=60)  # one simulated minute
    await asyncio.wait_for(clock.sleep_until(target), timeout=5)
    wall = time.monotonic() - wall0
    sim = (clock.now() - sim0).total_seconds()
    assert clock.now() >= target
    # Relative, not absolute: simulated time ran many times faster than the wall clock.
    assert sim / max(wall, 1e-6) > 50


async def test_realtime_tracks_the_wall_clock() -> None:
    clock = SimClock.realtime()
    before = dt.datetime.now(UTC)
    now = clock.now()
    assert now.tzinfo is not None
    assert abs((now - before).total_seconds()) < 5
    await asyncio.wait_for(clock.sleep_until(now + dt.timedelta(milliseconds=20)), timeout=2)
    assert clock.now() >= now + dt.timedelta(milliseconds=20)


async def test_lockstep_set_from_another_thread_wakes_waiters() -> None:
    clock = SimClock.lockstep(T0)
    target = T0 + dt.timedelta(minutes=30)
    task = asyncio.create_task(clock.sleep_until(target))
    while clock.pending_waiters < 1:
        await asyncio.sleep(0)
    await asyncio.to_thread(clock.set, target)
    await asyncio.wait_for(task, timeout=2)
    assert clock.now() == target
