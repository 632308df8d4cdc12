"""Subprocess helpers for the crash tests: ``hydra-tui`` (engine or standalone exchange) in a real
child process whose output is drained continuously, killed with a real SIGKILL."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from hydra_tui.soak.procs import Child as SoakChild
from hydra_tui.soak.procs import hydra_command

ROOT = Path(__file__).resolve().parents[2]


def command() -> list[str]:
    return hydra_command()


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Child(SoakChild):
    """The soak's child process with the tests' habits: positional arguments, no log file, and a
    ``wait_for`` that raises with the output's tail when the time runs out."""

    def __init__(self, *args: str) -> None:
        super().__init__("hydra-tui", list(args), env={"PYTHONPATH": str(ROOT)})

    async def wait_for(self, pattern: str, timeout: float = 30.0, start: int = 0) -> re.Match[str] | None:
        """The first line from index ``start`` matching ``pattern``; None if the process ended first."""
        m = await super().wait_for(pattern, timeout, start)
        if m is None and not self.drained:
            raise TimeoutError(f"no line matching {pattern!r}: {self.output()[-3000:]}")
        return m

    async def wait(self, timeout: float = 60.0) -> int:
        return await super().wait(timeout)


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
