"""The simulator's clock: one object that every timed part of the exchange reads.

It has the same shape as the engine's Clock protocol (``now()``, ``async sleep_until(t)``) but is
duck-typed, never imported, because ``hydra_engine.sim`` stands alone. Three modes:

- ``realtime``: wall-clock UTC.
- ``fixed_speed``: simulated time runs ``speed`` times faster than the wall clock from ``start``.
- ``lockstep``: time moves only when the owner calls ``set(t)``; ``sleep_until`` waiters wake when
  a ``set`` passes their time, so the exchange plays everything up to ``t`` deterministically.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import threading
import time
from typing import Literal

import structlog

log = structlog.get_logger(__name__)

ClockMode = Literal["realtime", "fixed_speed", "lockstep"]

# Longest single wall-clock wait in real-time and fixed-speed modes, so a waiter re-reads the
# clock at least this often (guards against a system clock jump or a changed speed).
_MAX_WAIT_S = 1.0


def _require_aware(t: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(t, dt.datetime):
        raise TypeError(f"{name} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {t.isoformat()}")
    return t.astimezone(dt.timezone.utc)


class SimClock:
    """Simulated time in one of three modes; build it with the class methods, not the initialiser."""

    __slots__ = ("_mode", "_start", "_speed", "_mono0", "_now", "_waiters", "_seq", "_lock")

    def __init__(self, mode: ClockMode, start: dt.datetime | None, speed: float) -> None:
        self._mode: ClockMode = mode
        self._start = start
        self._speed = speed
        self._mono0 = time.monotonic()
        self._now = start
        # (wake time, sequence, loop, future) for lock-step waiters.
        self._waiters: list[tuple[dt.datetime, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    # ----- constructors -------------------------------------------------------------------
    @classmethod
    def realtime(cls) -> "SimClock":
        """Wall-clock UTC time (speed 1, no start)."""
        return cls("realtime", None, 1.0)

    @classmethod
    def fixed_speed(cls, start: dt.datetime, speed: float) -> "SimClock":
        """Time starts at ``start`` and runs ``speed`` times faster than the wall clock."""
        start = _require_aware(start, "start")
        if not (isinstance(speed, (int, float)) and 0.0 < float(speed) <= 1_000_000.0):
            raise ValueError(f"speed must be a number in (0, 1000000], got {speed!r}")
        return cls("fixed_speed", start, float(speed))

    @classmethod
    def lockstep(cls, start: dt.datetime) -> "SimClock":
        """Time stands at ``start`` until the owner calls ``set``."""
        return cls("lockstep", _require_aware(start, "start"), 0.0)

    # ----- reading --------------------------------------------------------------------------
    @property
    def mode(self) -> ClockMode:
        return self._mode

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second (1 in real time, 0 in lock-step)."""
        return self._speed

    def now(self) -> dt.datetime:
        """Current simulated time, timezone-aware UTC."""
        if self._mode == "realtime":
            return dt.datetime.now(dt.timezone.utc)
        if self._mode == "fixed_speed":
            assert self._start is not None
            elapsed = (time.monotonic() - self._mono0) * self._speed
            return self._start + dt.timedelta(seconds=elapsed)
        assert self._now is not None
        return self._now

    # ----- lock-step control ----------------------------------------------------------------
    def set(self, t: dt.datetime) -> None:
        """Lock-step only: move time to ``t`` (never backwards) and wake waiters due by then."""
        if self._mode != "lockstep":
            raise RuntimeError(f"set() is only allowed in lockstep mode, this clock is {self._mode}")
        t = _require_aware(t, "t")
        with self._lock:
            assert self._now is not None
            if t < self._now:
                raise ValueError(
                    f"clock cannot move backwards: now {self._now.isoformat()}, asked {t.isoformat()}"
                )
            self._now = t
            due = []
            while self._waiters and self._waiters[0][0] <= t:
                due.append(heapq.heappop(self._waiters))
        for _, _, loop, fut in due:
            loop.call_soon_threadsafe(_resolve, fut)
        if due:
            log.debug("sim_clock_woke_waiters", now=t.isoformat(), woken=len(due))

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Lock-step only: ``set(now() + delta)``; returns the new time."""
        if delta < dt.timedelta(0):
            raise ValueError(f"advance() needs a non-negative delta, got {delta}")
        self.set(self.now() + delta)
        return self.now()

    @property
    def pending_waiters(self) -> int:
        """Lock-step waiters not yet woken (lets an owner see whether anything is scheduled)."""
        with self._lock:
            return sum(1 for w in self._waiters if not w[3].done())

    def next_wakeup(self) -> dt.datetime | None:
        """Earliest time a lock-step waiter is waiting for, or None."""
        with self._lock:
            live = [w[0] for w in self._waiters if not w[3].done()]
        return min(live) if live else None

    # ----- waiting --------------------------------------------------------------------------
    async def sleep_until(self, t: dt.datetime) -> None:
        """Return once ``now() >= t`` (immediately if it already is)."""
        t = _require_aware(t, "t")
        if self._mode == "lockstep":
            loop = asyncio.get_running_loop()
            with self._lock:
                assert self._now is not None
                if self._now >= t:
                    return
                fut: asyncio.Future[None] = loop.create_future()
                heapq.heappush(self._waiters, (t, next(self._seq), loop, fut))
            try:
                await fut
            finally:
                if not fut.done():  # cancelled: forget the waiter
                    fut.cancel()
                    with self._lock:
                        self._waiters = [w for w in self._waiters if w[3] is not fut]
                        heapq.heapify(self._waiters)
            return
        while True:
            remaining_sim_s = (t - self.now()).total_seconds()
            if remaining_sim_s <= 0:
                return
            await asyncio.sleep(min(remaining_sim_s / self._speed, _MAX_WAIT_S))

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time."""
        await self.sleep_until(self.now() + dt.timedelta(seconds=seconds))

    def __repr__(self) -> str:
        return f"SimClock(mode={self._mode!r}, now={self.now().isoformat()}, speed={self._speed})"


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
