"""The engine's time source: wall time, the embedded exchange's lock-step clock, or a broker's clock.

Every part holds one ``SwitchableClock``, so choosing the source after the first connection (the
store, gate and order manager are built later) needs no rewiring. A real gateway's time is wall
time; a broker clock far from it (an external ``hydra-tui sim --speed X`` or ``--start``) means
broker-time mode: the engine follows the broker's clock, recalibrated by periodic probes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import structlog

from hydra_engine.tasks import log_task_failure

log = structlog.get_logger(__name__)

BROKER_TIME_SKEW_S = 300.0
"""A broker clock further than this from wall time switches the engine to broker time."""
BROKER_TIME_PROBE_S = 5.0
"""Real seconds between two calibration probes of the broker's clock."""


class SwitchableClock:
    """The engine's clock for an external broker: wall time until the broker's clock is chosen."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock

    def use(self, clock: Any) -> None:
        self._clock = clock

    @property
    def source(self) -> Any:
        return self._clock

    def now(self) -> dt.datetime:
        return self._clock.now()

    async def sleep_until(self, t: dt.datetime) -> None:
        await self._clock.sleep_until(t)


async def probe_broker_time(broker: Any) -> tuple[float, float]:
    """``(broker epoch seconds, local monotonic seconds at the middle of the round trip)``."""
    # ib_async keeps ONE reqCurrentTime future: share the gateway's barrier lock so a quote's
    # barrier and this probe never overwrite each other's reply
    lock = getattr(broker, "_barrier_lock", None) or asyncio.Lock()
    async with lock:
        m0 = time.monotonic()
        t = await asyncio.wait_for(broker.ib.reqCurrentTimeAsync(), 10.0)
        return t.timestamp(), (m0 + time.monotonic()) / 2.0


async def follow_broker_time(broker: Any, clock: SwitchableClock) -> asyncio.Task[Any] | None:
    """Switch ``clock`` to the broker's when it is far from wall time; returns the task that keeps
    it calibrated (None: wall time stays)."""
    from hydra_engine.clock import BrokerClock

    server, mono = await probe_broker_time(broker)
    skew = abs(server - dt.datetime.now(dt.timezone.utc).timestamp())
    if skew < BROKER_TIME_SKEW_S:
        return None
    broker_clock = BrokerClock()
    broker_clock.calibrate(server, mono)
    for _ in range(3):  # a first speed estimate before anything schedules on this clock
        await asyncio.sleep(0.4)
        broker_clock.recalibrate(*await probe_broker_time(broker))
    clock.use(broker_clock)
    task = asyncio.get_running_loop().create_task(_probe_loop(broker, broker_clock), name="engine-broker-time")
    task.add_done_callback(log_task_failure)
    log.info("engine.broker_time", skew_s=round(skew, 1), broker_now=clock.now().isoformat(),
             speed=round(broker_clock.speed, 3))
    return task


async def _probe_loop(broker: Any, clock: Any) -> None:
    while True:
        await asyncio.sleep(BROKER_TIME_PROBE_S)  # real seconds: the probe calibrates the broker clock
        if not broker.is_connected:
            continue
        try:
            server, mono = await probe_broker_time(broker)
        except (asyncio.TimeoutError, ConnectionError) as exc:
            log.warning("engine.broker_time_probe_failed", error=str(exc))
            continue
        clock.recalibrate(server, mono)

