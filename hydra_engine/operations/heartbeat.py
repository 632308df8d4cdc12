"""The heartbeat file: proof of life that cron, systemd or any monitor can read without SQLite.

Every ``interval_s`` wall seconds the engine rewrites ``heartbeat.json`` in its store directory
(temporary file, fsync, rename: a reader never sees half a file) with its PID, the wall time, the
engine's own clock, its state and its last cycle. A clean stop writes ``"state": "stopped"``. A file
whose ``written_at`` is older than two intervals means the engine is hung or gone:
``heartbeat_verdict`` says which of alive, stale, stopped or missing applies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from hydra_engine.tasks import log_task_failure

log = structlog.get_logger(__name__)

HEARTBEAT_FILE = "heartbeat.json"
STALE_SLACK_S = 5.0
"""Grace on top of two intervals before a heartbeat counts as stale (a busy disk, a slow loop)."""


def write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename (never half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, default=str, sort_keys=True, indent=1)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat at ``path`` (None when missing or unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def heartbeat_verdict(data: Mapping[str, Any] | None, now: dt.datetime | None = None) -> str:
    """``alive``, ``stale`` (older than two intervals: hung or killed), ``stopped`` (clean stop) or ``missing``."""
    if not data:
        return "missing"
    if data.get("state") == "stopped":
        return "stopped"
    try:
        written = dt.datetime.fromisoformat(str(data["written_at"]))
        interval = float(data.get("interval_s", 60.0))
    except (KeyError, ValueError, TypeError):
        return "stale"
    now = now or dt.datetime.now(dt.timezone.utc)
    return "alive" if (now - written).total_seconds() <= 2 * interval + STALE_SLACK_S else "stale"


class Heartbeat:
    """Rewrites the heartbeat file every ``interval_s`` wall seconds from ``snapshot()``."""

    def __init__(self, path: Path, interval_s: float, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        if interval_s <= 0:
            raise ValueError(f"heartbeat interval_s = {interval_s}: must be positive")
        self.path = Path(path)
        self.interval_s = float(interval_s)
        self._snapshot = snapshot
        self._task: asyncio.Task[None] | None = None
        self.beats = 0

    def content(self, state: str) -> dict[str, Any]:
        try:
            engine = dict(self._snapshot())
        except Exception as exc:  # noqa: BLE001 - a heartbeat without details still says the process lives
            engine = {"snapshot_error": f"{type(exc).__name__}: {exc}"}
        return {**engine, "pid": os.getpid(), "state": state, "interval_s": self.interval_s,
                "written_at": dt.datetime.now(dt.timezone.utc).isoformat()}

    async def beat(self, state: str = "running") -> None:
        """Write the file once now (in a thread: fsync must not stall the loop)."""
        data = self.content(state)
        await asyncio.to_thread(write_atomic, self.path, data)
        self.beats += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")
        self._task.add_done_callback(log_task_failure)

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except OSError as exc:
                log.warning("heartbeat.write_failed", path=str(self.path), error=str(exc))
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        """Stop beating and leave ``"state": "stopped"`` in the file."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.beat("stopped")
        except OSError as exc:
            log.warning("heartbeat.write_failed", path=str(self.path), error=str(exc))
