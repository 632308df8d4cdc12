"""Run ``hydra-tui`` as a real subprocess on a temporary data dir (the bad-input tests' one tool)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--set", "agent.enabled=false", "--set", "execution.long_threshold=0.5",
         "--set", "execution.short_threshold=0.5"]
"""No experiments, and a side every day: a position after the first trading day."""
STORE = "sim-DU1234567"


def hydra(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_HOME", None)
    env.pop("HYDRA_LIVE_CONFIRMED", None)
    return subprocess.run([sys.executable, "-m", "hydra_tui.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of a data dir made by ``hydra``, without its lock file."""
    shutil.copytree(src, dst)
    lock = dst / STORE / "hydra.lock"
    if lock.exists():
        lock.unlink()
    return dst
