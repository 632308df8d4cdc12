"""Subprocess helpers for the crash tests: ``hydra-tui`` (engine or standalone exchange) in a real
child process whose output is drained continuously, killed with a real SIGKILL."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def command() -> list[str]:
    script = Path(sys.executable).parent / "hydra-tui"
    exe = str(script) if script.exists() else shutil.which("hydra-tui")
    return [exe] if exe else [sys.executable, "-m", "hydra_tui.cli"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Child:
    """One ``hydra-tui`` process; ``wait_for(pattern)`` waits for a matching output line."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.lines: list[str] = []
        self._new = asyncio.Event()

    async def start(self) -> "Child":
        self.proc = await asyncio.create_subprocess_exec(
            *command(), *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=env(), start_new_session=True,
        )  # fmt: skip
        self._drain = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace"))
            self._new.set()
        self._new.set()

    async def wait_for(self, pattern: str, timeout: float = 30.0, start: int = 0) -> re.Match[str] | None:
        """The first line from index ``start`` matching ``pattern``; None if the process ended first."""
        rx = re.compile(pattern)
        i = start
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            while i < len(self.lines):
                m = rx.search(self.lines[i])
                if m:
                    return m
                i += 1
            if self._drain.done():
                return None
            self._new.clear()
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError(f"no line matching {pattern!r}: {''.join(self.lines)[-3000:]}")
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    def kill9(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def wait(self, timeout: float = 60.0) -> int:
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._drain, 10)
        return rc

    async def terminate(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait()

    def output(self) -> str:
        return "".join(self.lines)


def run_engine(data_dir: Path, days: int, *extra: str, timeout: float = 120.0) -> "subprocess.CompletedProcess[str]":
    """``hydra-tui --no-ui --data-dir DIR --days N`` to its end (blocking: sync tests only)."""
    return subprocess.run([*command(), "--no-ui", "--data-dir", str(data_dir), "--days", str(days), *extra],
                          capture_output=True, text=True, env=env(), timeout=timeout)  # fmt: skip


def store_dir(data_dir: Path) -> Path:
    """The one per-account store directory under a data dir (``sim-DU1234567``)."""
    [d] = [p for p in Path(data_dir).iterdir() if p.is_dir() and p.name.startswith("sim-")]
    return d


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    """Rows from the engine's store, read-only, as another process would."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()
