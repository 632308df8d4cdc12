"""Bounded memory over weeks: the long-lived collections that only grow get trimmed on a timer.

Most of the engine's collections are bounded where they live (event subscribers' buffers, the
broker's notices, the alert history, the TUI's log ring). The one that is not is ib_async's own:
it keeps every ``Trade`` and ``Fill`` of a session until the session ends, and a session can last
weeks. ``MemoryGuard`` asks the gateway to drop finished trades every minute and records the
process's resident memory, so the heartbeat (and a soak) can show it stays flat.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from hydra_engine.tasks import log_task_failure

log = structlog.get_logger(__name__)

TRIM_INTERVAL_S = 60.0
"""A minute: lock-step at full speed finishes a hundred trades in that time; a trim is a sort of the
finished ones, cheap beside that."""


class TradeTrimmer(Protocol):
    """The gateway as the guard uses it (``BrokerGateway`` fits)."""

    def trim_finished_trades(self, *, max_age_s: float = ..., keep: int = ...) -> int: ...


def rss_bytes() -> int | None:
    """This process's resident set size (None when psutil cannot tell)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - a missing figure is not an error
        return None


class MemoryGuard:
    """Trims the broker's finished trades every ``interval_s`` wall seconds and samples RSS."""

    def __init__(self, broker: TradeTrimmer, *, interval_s: float = TRIM_INTERVAL_S,
                 max_age_s: float | None = None, keep: int | None = None) -> None:
        self._broker = broker
        self.interval_s = interval_s
        self._kw: dict[str, float | int] = {}
        if max_age_s is not None:
            self._kw["max_age_s"] = max_age_s
        if keep is not None:
            self._kw["keep"] = keep
        self.trimmed = 0
        self.rss: int | None = None
        self._task: asyncio.Task[None] | None = None

    def run_once(self) -> int:
        """Trim now; returns the trades dropped."""
        dropped = self._broker.trim_finished_trades(**self._kw)  # type: ignore[arg-type]
        self.trimmed += dropped
        self.rss = rss_bytes()
        return dropped

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="memory-guard")
        self._task.add_done_callback(log_task_failure)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - trimming again later is fine
                log.exception("memory_guard.trim_failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
