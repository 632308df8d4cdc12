"""Back-off policy and the reconnect supervisor (real asyncio, no gateway needed)."""

from __future__ import annotations

import asyncio
import random

import pytest

from hydra_engine.broker.connection import BackoffPolicy, ConnectionSupervisor
from hydra_engine.broker.errors import LiveAccountRefused


def test_backoff_grows_exponentially_and_caps() -> None:
    p = BackoffPolicy(initial_s=0.5, max_s=8.0, multiplier=2.0, jitter=0.0)
    assert [p.delay(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert p.delay(10_000) == 8.0


def test_backoff_jitter_stays_within_band_and_varies() -> None:
    p = BackoffPolicy(initial_s=1.0, max_s=100.0, jitter=0.25)
    rng = random.Random(7)
    draws = [p.delay(3, rng) for _ in range(200)]
    assert all(6.0 <= d <= 10.0 for d in draws)
    assert len(set(draws)) > 150


@pytest.mark.parametrize(
    "kwargs, field",
    [({"initial_s": 0}, "initial_s"), ({"multiplier": 0.5}, "multiplier"), ({"jitter": 1.5}, "jitter")],
)
def test_backoff_rejects_bad_values_naming_the_field(kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        BackoffPolicy(**kwargs)


async def test_supervisor_retries_until_success_then_reconnects_after_loss() -> None:
    calls = 0
    fail_first = 3

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        if calls <= fail_first:
            raise ConnectionRefusedError("gateway down")

    sup = ConnectionSupervisor(attempt, BackoffPolicy(initial_s=0.01, max_s=0.02, jitter=0.1))
    sup.start()
    assert await sup.wait_connected(5.0)
    assert calls == fail_first + 1
    assert sup.connects == 1 and sup.failures == 0
    sup.notify_lost()
    assert not sup.connected
    assert await sup.wait_connected(5.0)
    assert sup.connects == 2 and calls == fail_first + 2
    await sup.stop()
    assert not sup.running


async def test_deliberate_stop_does_not_reconnect() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1

    sup = ConnectionSupervisor(attempt, BackoffPolicy(initial_s=0.01, max_s=0.01, jitter=0))
    sup.start()
    assert await sup.wait_connected(5.0)
    await sup.stop()
    sup.notify_lost()
    await asyncio.sleep(0)
    assert calls == 1
    assert not sup.running and not sup.connected


async def test_fatal_refusal_stops_the_supervisor() -> None:
    async def attempt() -> None:
        raise LiveAccountRefused("account U123 is not a paper account")

    sup = ConnectionSupervisor(attempt, BackoffPolicy(initial_s=0.01, max_s=0.01, jitter=0))
    sup.start()
    assert not await sup.wait_connected(5.0)
    assert isinstance(sup.fatal_error, LiveAccountRefused)
    assert not sup.running


async def test_kick_skips_a_long_backoff() -> None:
    calls = 0
    ok = asyncio.Event()

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("down")
        ok.set()

    changed = asyncio.Event()
    sup = ConnectionSupervisor(attempt, BackoffPolicy(initial_s=60.0, max_s=60.0, jitter=0), on_change=changed.set)
    sup.start()
    await asyncio.wait_for(changed.wait(), 5)  # the first attempt failed: a 60 s back-off begins
    assert sup.failures == 1 and not sup.connected
    sup.kick()
    assert await sup.wait_connected(2.0)
    await sup.stop()
