"""Child processes of the soak: ``hydra-tui sim`` and ``hydra-tui --no-ui`` in their own sessions,
their output drained continuously into a log file and a line list, killed with real signals."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import TextIO


def hydra_command() -> list[str]:
    """How to run ``hydra-tui`` with this interpreter (the console script, else the module)."""
    script = Path(sys.executable).parent / "hydra-tui"
    exe = str(script) if script.exists() else shutil.which("hydra-tui")
    return [exe] if exe else [sys.executable, "-m", "hydra_tui.cli"]


class Child:
    """One ``hydra-tui`` process. ``wait_for(pattern)`` waits for a matching output line."""

    def __init__(self, name: str, args: list[str], log_path: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.lines: list[str] = []
        self._new = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self._log: TextIO | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> Child:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed when the drain ends
            self._log.write(f"===== {self.name}: {' '.join(self.args)}\n")
        self.proc = await asyncio.create_subprocess_exec(
            *hydra_command(), *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.env, start_new_session=True)
        self._drain = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if self._log is not None:
                    self._log.write(line)
                self._new.set()
        finally:
            if self._log is not None:
                self._log.close()
            self._new.set()

    @property
    def drained(self) -> bool:
        """The process's output has ended (it exited, or was never started)."""
        return self._drain is None or self._drain.done()

    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str] | None:
        """The first line at index >= ``start`` matching ``pattern``; None if the process ended or
        ``timeout`` real seconds passed first."""
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
            if self.drained:
                return None
            self._new.clear()
            left = end - loop.time()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    def signal(self, sig: int, *, group: bool = False) -> None:
        """Send ``sig`` to the process (``group``: to its whole session, children included)."""
        if self.running and self.proc is not None:
            try:
                if group:
                    os.killpg(self.proc.pid, sig)
                else:
                    self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    async def wait(self, timeout: float = 120.0) -> int:
        assert self.proc is not None
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._drain is not None:
            await asyncio.wait_for(self._drain, 10)
        return rc

    def sigkill(self) -> None:
        """SIGKILL the process alone, as a crash would (children it started must end by themselves);
        does not wait, so a callback can call it the instant it sees something."""
        self.signal(signal.SIGKILL)

    async def kill9(self) -> int:
        """``sigkill`` and wait for the exit."""
        self.sigkill()
        return await self.wait()

    async def kill_group(self) -> None:
        """Last-resort cleanup: SIGKILL the process's whole session."""
        self.signal(signal.SIGKILL, group=True)
        if self.proc is not None:
            await self.wait()

    async def terminate(self, timeout: float = 120.0) -> int:
        """SIGTERM: the engine and the exchange stop cleanly (state saved, orders cancelled)."""
        self.signal(signal.SIGTERM)
        try:
            return await self.wait(timeout)
        except TimeoutError:
            return await self.kill9()
