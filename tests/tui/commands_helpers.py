"""Shared by the ``test_commands*`` modules: run ``hydra-tui`` as a real subprocess, copy a store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
STORE = "sim-DU1234567"
NO_AGENT = ["--set", "agent.enabled=false"]


def env() -> dict[str, str]:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    e.pop("HYDRA_HOME", None)
    return e


def hydra(*args: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hydra_tui.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env(), input=stdin if stdin is not None else "")


def hydra_json(*args: str, timeout: float = 120) -> tuple[int, Any]:
    out = hydra(*args, "--json", timeout=timeout)
    assert out.returncode in (0, 1, 2), out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of a data dir (the store and the exchange state), without the lock file."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("hydra.lock"))
    return dst


def wait_for(check: Callable[[], Any], timeout_s: float, interval_s: float = 0.5, what: str = "condition") -> Any:
    """Poll ``check`` until it returns a truthy value (returned) or ``timeout_s`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; last: {last!r}")
