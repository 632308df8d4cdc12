"""One notion of time for the whole engine.

Everything that schedules or waits (decision times, patience schedules, cooldowns, pacing) reads a
``Clock``, so the same engine runs against the wall clock (IB paper/live, ``sim`` at speed 1), a
manually stepped clock (lock-step simulation, tests) or the broker's clock (an external simulator
running faster than real time). All instants are timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable, Protocol, runtime_checkable

import structlog

log = structlog.get_logger(__name__)

UTC = timezone.utc


def ensure_utc(t: datetime, what: str = "time") -> datetime:
    """``t`` converted to UTC; a naive datetime is refused because its zone would be a guess."""
    if not isinstance(t, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
        raise ValueError(f"{what} {t.isoformat()} is naive: pass a timezone-aware datetime")
    return t.astimezone(UTC)


@runtime_checkable
class Clock(Protocol):
    """The engine's time source. ``now()`` is tz-aware UTC; ``sleep_until`` returns at or after ``t``."""

    def now(self) -> datetime: ...

    async def sleep_until(self, t: datetime) -> None: ...


class WallClock:
    """The computer's clock. Sleeps in bounded steps so a suspend or clock step cannot oversleep."""

    def __init__(self, max_step_s: float = 30.0) -> None:
        if max_step_s <= 0:
            raise ValueError(f"max_step_s = {max_step_s}: must be above 0")
        self._max_step_s = max_step_s

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, t: datetime) -> None:
        target = ensure_utc(t, "sleep_until target")
        while True:
            remaining = (target - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, self._max_step_s))


class ClockNotCalibratedError(RuntimeError):
    """A ``BrokerClock`` was read before the first broker time probe."""


class BrokerClock:
    """Time as the broker sees it, interpolated between probes (``reqCurrentTime``).

    ``now() = anchor server time + (monotonic now - anchor monotonic) × speed``. The speed starts at
    ``speed`` and, with ``estimate_speed``, is re-estimated on each probe from the longest consistent
    baseline, so an external simulator running at ``--speed X`` is followed without being told X.
    A probe that disagrees with the prediction by more than the tolerance (the broker restarted, its
    clock jumped, or its speed changed) re-anchors the clock and re-estimates the speed at the next
    probe. Pass the monotonic reading taken half-way through the probe's round trip for accuracy;
    server times are often whole seconds, which the tolerance allows for.
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        estimate_speed: bool = True,
        resolution_s: float = 1.0,
        min_baseline_s: float = 20.0,
        max_sleep_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed = {speed}: must be above 0")
        self._speed = float(speed)
        self._estimate = estimate_speed
        self._resolution_s = resolution_s
        self._min_baseline_s = min_baseline_s
        self._max_sleep_s = max_sleep_s
        self._monotonic = monotonic
        self._anchor: tuple[float, float] | None = None  # (server epoch s, local monotonic s)
        self._last: tuple[float, float] | None = None
        self._speed_from_next_probe = False
        self._last_returned = float("-inf")
        self._changed: asyncio.Event | None = None
        self.probes = 0
        self.reanchors = 0

    @property
    def calibrated(self) -> bool:
        return self._anchor is not None

    @property
    def speed(self) -> float:
        """Broker seconds per local second (1.0 for a real gateway)."""
        return self._speed

    def calibrate(self, server_epoch_seconds: float, local_monotonic: float | None = None) -> None:
        """Start afresh from one probe: anchor here, keep the current speed guess."""
        m = self._monotonic() if local_monotonic is None else float(local_monotonic)
        self._anchor = (float(server_epoch_seconds), m)
        self._last = self._anchor
        self._last_returned = float("-inf")
        self.probes += 1
        self._wake()

    def recalibrate(self, server_epoch_seconds: float, local_monotonic: float | None = None) -> None:
        """Fold in another probe: refine the speed, or re-anchor when the probe contradicts us."""
        if self._anchor is None or self._last is None:
            self.calibrate(server_epoch_seconds, local_monotonic)
            return
        s = float(server_epoch_seconds)
        m = self._monotonic() if local_monotonic is None else float(local_monotonic)
        s_last, m_last = self._last
        if m <= m_last:
            return  # out-of-order or duplicate probe: nothing new to learn
        self.probes += 1
        if self._speed_from_next_probe:
            span = s - s_last
            if span > 0 and (span >= self._min_baseline_s or (m - m_last) * self._speed >= self._min_baseline_s):
                self._speed = span / (m - m_last)
                self._speed_from_next_probe = False
                self._anchor = (s_last, m_last)
            self._last = (s, m)
            self._wake()
            return
        predicted = self._server_at(m)
        tolerance = 2.0 * self._resolution_s + 0.05 * self._speed * (m - m_last)
        error = s - predicted
        if abs(error) > tolerance:
            log.info("broker_clock_reanchored", error_s=round(error, 3), tolerance_s=round(tolerance, 3))
            self._anchor = (s, m)
            self._last = (s, m)
            self._last_returned = float("-inf")
            self._speed_from_next_probe = self._estimate
            self.reanchors += 1
            self._wake()
            return
        s0, m0 = self._anchor
        if self._estimate and s - s0 >= self._min_baseline_s and m > m0:
            self._speed = (s - s0) / (m - m0)
        self._last = (s, m)
        self._wake()

    async def probe(self, fetch: Callable[[], Awaitable[datetime | float]]) -> float:
        """Ask the broker for its time (e.g. ``ib.reqCurrentTimeAsync``) and fold it in, stamped at
        the middle of the round trip. Returns the round trip in seconds."""
        t0 = self._monotonic()
        server = await fetch()
        t1 = self._monotonic()
        s = ensure_utc(server, "broker time").timestamp() if isinstance(server, datetime) else float(server)
        self.recalibrate(s, (t0 + t1) / 2)
        return t1 - t0

    def _server_at(self, m: float) -> float:
        assert self._anchor is not None
        s0, m0 = self._anchor
        return s0 + (m - m0) * self._speed

    def now(self) -> datetime:
        if self._anchor is None:
            raise ClockNotCalibratedError("BrokerClock.now() before calibrate(): probe the broker's time first")
        s = max(self._server_at(self._monotonic()), self._last_returned)
        self._last_returned = s
        return datetime.fromtimestamp(s, UTC)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def sleep_until(self, t: datetime) -> None:
        target = ensure_utc(t, "sleep_until target")
        if self._changed is None:
            self._changed = asyncio.Event()
        while True:
            remaining = (target - self.now()).total_seconds()
            if remaining <= 0:
                return
            real = min(remaining / self._speed, self._max_sleep_s)
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=real)
            except TimeoutError:
                pass


class ManualClock:
    """A clock that moves only when told: lock-step simulation and tests.

    ``set``/``advance`` never move backwards (ValueError); sleepers whose time has come wake in
    deadline order. ``sleepers`` and ``wait_for_sleepers`` let a driver know the engine is waiting.
    """

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start, "start")
        self._heap: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._sleeper_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def set(self, t: datetime) -> None:
        target = ensure_utc(t, "clock time")
        if target < self._now:
            raise ValueError(
                f"ManualClock cannot move backwards: {target.isoformat()} is before {self._now.isoformat()}"
            )
        self._now = target
        while self._heap and self._heap[0][0] <= target:
            _, _, fut = heapq.heappop(self._heap)
            if not fut.done():
                fut.set_result(None)

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError(f"ManualClock.advance({delta}): delta must not be negative")
        self.set(self._now + delta)

    @property
    def sleepers(self) -> int:
        """Tasks currently waiting in ``sleep_until``."""
        return sum(1 for _, _, f in self._heap if not f.done())

    def next_wakeup(self) -> datetime | None:
        """The earliest pending sleeper's deadline, if any."""
        pending = [d for d, _, f in self._heap if not f.done()]
        return min(pending) if pending else None

    async def sleep_until(self, t: datetime) -> None:
        target = ensure_utc(t, "sleep_until target")
        if target <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (target, next(self._seq), fut))
        self._notify_sleepers()
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()
            self._heap = [e for e in self._heap if not e[2].done()]
            heapq.heapify(self._heap)

    def _notify_sleepers(self) -> None:
        count = self.sleepers
        keep = []
        for n, fut in self._sleeper_waiters:
            if fut.done():
                continue
            if count >= n:
                fut.set_result(None)
            else:
                keep.append((n, fut))
        self._sleeper_waiters = keep

    async def wait_for_sleepers(self, n: int = 1, timeout: float | None = 5.0) -> None:
        """Return once at least ``n`` tasks sleep on this clock (TimeoutError after ``timeout`` s)."""
        if self.sleepers >= n:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleeper_waiters.append((n, fut))
        await asyncio.wait_for(fut, timeout)


def to_iso(t: datetime) -> str:
    """Sortable ISO-8601 UTC text with microseconds, as the store writes times."""
    return ensure_utc(t).isoformat(timespec="microseconds")


def from_iso(text: str) -> datetime:
    """Parse a time written by ``to_iso`` (or any ISO-8601 text with an offset) as UTC."""
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)
