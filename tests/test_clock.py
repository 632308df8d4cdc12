"""Clocks: ManualClock wake-ups, BrokerClock calibration and speed estimation, WallClock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from hydra_engine.clock import (
    BrokerClock,
    Clock,
    ClockNotCalibratedError,
    ManualClock,
    WallClock,
    ensure_utc,
    from_iso,
    to_iso,
)

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)


def test_protocol_and_utc_helpers() -> None:
    for c in (WallClock(), ManualClock(T0), BrokerClock()):
        assert isinstance(c, Clock)
    with pytest.raises(ValueError, match="naive"):
        ensure_utc(datetime(2026, 1, 1))
    eastern = timezone(timedelta(hours=-5))
    assert ensure_utc(datetime(2026, 1, 1, 9, tzinfo=eastern)) == datetime(2026, 1, 1, 14, tzinfo=UTC)
    assert from_iso(to_iso(T0)) == T0
    assert to_iso(T0) < to_iso(T0 + timedelta(microseconds=1))


async def test_manual_clock_wakes_sleepers_in_order() -> None:
    clock = ManualClock(T0)
    woke: list[str] = []

    async def sleeper(name: str, at: datetime) -> None:
        await clock.sleep_until(at)
        woke.append(name)
        assert clock.now() >= at

    tasks = [asyncio.create_task(sleeper("late", T0 + timedelta(hours=2))),
             asyncio.create_task(sleeper("early", T0 + timedelta(hours=1)))]
    await clock.wait_for_sleepers(2, timeout=5)
    assert clock.sleepers == 2 and clock.next_wakeup() == T0 + timedelta(hours=1)
    clock.advance(timedelta(minutes=59))
    await asyncio.sleep(0)
    assert woke == []
    clock.set(T0 + timedelta(hours=3))  # passes both deadlines at once
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert woke == ["early", "late"]
    assert clock.sleepers == 0 and clock.next_wakeup() is None
    await asyncio.wait_for(clock.sleep_until(T0), 1)  # past deadline returns at once


async def test_manual_clock_refuses_backwards_and_cancellation_cleans_up() -> None:
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="negative"):
        clock.advance(timedelta(seconds=-1))
    task = asyncio.create_task(clock.sleep_until(T0 + timedelta(days=1)))
    await clock.wait_for_sleepers(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    with pytest.raises(TimeoutError):
        await clock.wait_for_sleepers(1, timeout=0.05)


class FakeMonotonic:
    """A controllable local monotonic source (the broker side is what we calibrate against)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_broker_clock_requires_calibration() -> None:
    with pytest.raises(ClockNotCalibratedError):
        BrokerClock().now()


def test_broker_clock_interpolates_at_speed_one() -> None:
    mono = FakeMonotonic()
    clock = BrokerClock(monotonic=mono)
    server0 = T0.timestamp()
    clock.calibrate(server0, local_monotonic=mono.t)
    mono.t += 12.5
    assert clock.now() == T0 + timedelta(seconds=12.5)
    # Whole-second probes over a long baseline keep the speed at ~1.
    for step in range(1, 11):
        mono.t = 1000.0 + 30 * step
        clock.recalibrate(int(server0 + 30 * step), mono.t)
    assert clock.speed == pytest.approx(1.0, abs=0.002)
    assert clock.reanchors == 0


def test_broker_clock_learns_an_unknown_speed() -> None:
    mono = FakeMonotonic()
    clock = BrokerClock(monotonic=mono)  # believes speed 1; the simulator runs at 600x
    s = T0.timestamp()
    clock.calibrate(s, mono.t)
    for _ in range(5):
        mono.t += 1.0
        s += 600.0
        clock.recalibrate(int(s), mono.t)
    assert clock.speed == pytest.approx(600.0, rel=0.01)
    mono.t += 0.5
    assert abs((clock.now() - datetime.fromtimestamp(s + 300, UTC)).total_seconds()) < 3
    assert clock.reanchors == 1


def test_broker_clock_follows_a_jump_and_never_goes_back_within_an_epoch() -> None:
    mono = FakeMonotonic()
    clock = BrokerClock(monotonic=mono, estimate_speed=False)
    s = T0.timestamp()
    clock.calibrate(s, mono.t)
    mono.t += 10
    first = clock.now()
    clock.recalibrate(s + 9.5, mono.t)  # within tolerance: no jump, time does not go back
    assert clock.now() >= first
    mono.t += 1
    clock.recalibrate(s + 86_400, mono.t)  # broker restarted a day later
    assert clock.reanchors == 1
    assert clock.now() == datetime.fromtimestamp(s + 86_400, UTC)


async def test_broker_clock_sleep_until_with_real_time() -> None:
    clock = BrokerClock(speed=1000.0, estimate_speed=False)
    clock.calibrate(T0.timestamp())
    target = clock.now() + timedelta(seconds=50)  # 50 ms of real time
    await asyncio.wait_for(clock.sleep_until(target), 5)
    assert clock.now() >= target


async def test_broker_clock_sleep_wakes_on_recalibration() -> None:
    clock = BrokerClock(speed=1.0, estimate_speed=False, max_sleep_s=60)
    clock.calibrate(T0.timestamp())
    target = T0 + timedelta(hours=1)
    task = asyncio.create_task(clock.sleep_until(target))
    await asyncio.sleep(0.01)
    assert not task.done()
    clock.recalibrate(target.timestamp() + 5)  # the broker says we are past the target
    await asyncio.wait_for(task, 5)


async def test_wall_clock() -> None:
    clock = WallClock(max_step_s=0.01)
    now = clock.now()
    assert now.tzinfo == UTC
    target = now + timedelta(milliseconds=30)
    await asyncio.wait_for(clock.sleep_until(target), 5)
    assert clock.now() >= target
    with pytest.raises(ValueError):
        WallClock(max_step_s=0)


def test_broker_clock_tracks_a_fast_broker_through_noisy_whole_second_probes() -> None:
    import random

    rng = random.Random(11)
    mono = FakeMonotonic()
    true_speed = 60.0
    base_server, base_mono = T0.timestamp(), mono.t

    def server_now() -> float:
        return base_server + (mono.t - base_mono) * true_speed

    clock = BrokerClock(monotonic=mono)
    clock.calibrate(int(server_now()), mono.t)
    worst_late = 0.0
    for i in range(200):
        mono.t += rng.uniform(0.5, 1.5)
        rtt = rng.uniform(0.0, 0.02)  # the probe's midpoint is off by up to half the round trip
        clock.recalibrate(int(server_now() + rtt / 2 * true_speed), mono.t)
        if i > 5:
            mono.t += 0.3
            worst_late = max(worst_late, abs(clock.now().timestamp() - server_now()))
    assert clock.speed == pytest.approx(true_speed, rel=0.005)
    assert worst_late < 3.0  # broker seconds, i.e. < 0.05 s of real time at 60x
    assert clock.reanchors == 1  # only the initial speed discovery


async def test_broker_clock_probe_stamps_the_middle_of_the_round_trip() -> None:
    mono = FakeMonotonic()
    clock = BrokerClock(monotonic=mono, estimate_speed=False)

    async def fetch() -> datetime:  # a broker answering after 0.4 s with its time at mid-trip
        mono.t += 0.2
        answer = T0
        mono.t += 0.2
        return answer

    rtt = await clock.probe(fetch)
    assert rtt == pytest.approx(0.4)
    assert clock.calibrated and clock.now() == T0 + timedelta(seconds=0.2)

    async def fetch_epoch() -> float:
        return T0.timestamp() + 10.2

    mono.t += 10
    await clock.probe(fetch_epoch)
    assert clock.reanchors == 0 and clock.probes == 2
