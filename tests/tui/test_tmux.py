"""A real terminal: hydra-tui in a detached tmux session, keys by send-keys, the screen by capture-pane."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

HYDRA_TUI = str(Path(sys.executable).with_name("hydra-tui"))


def test_hydra_tui_in_tmux(tmp_path: Path) -> None:
    session = f"hydra-test-{uuid.uuid4().hex[:8]}"
    sock = ["-L", session]  # a private tmux server: never the user's sessions
    cmd = f"{HYDRA_TUI} --data-dir {tmp_path} --day-seconds 0.5"
    env = "-u COLUMNS -u LINES TERM=xterm-256color"  # the pane decides the size, not an inherited COLUMNS
    started = subprocess.run(["tmux", *sock, "new-session", "-d", "-s", session, "-x", "160", "-y", "50",
                              f"env {env} {cmd}"], capture_output=True, text=True, timeout=10)
    assert started.returncode == 0, started.stderr

    def tmux(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", *sock, *args], capture_output=True, text=True, timeout=10)

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", session).stdout

    def wait_for(ok: Callable[[str], bool], timeout: float = 40.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = screen()
            if ok(text):
                return text
            time.sleep(0.25)
        raise AssertionError(f"screen never matched; last capture:\n{text}")

    try:
        tmux("set-option", "-s", "escape-time", "10")
        text = wait_for(lambda t: "SIM" in t)
        assert "SIM" in text
        wait_for(lambda t: "BUY" in t or "SELL" in t)  # a cycle ran and its fill reached the fills pane
        tmux("send-keys", "-t", session, "r")
        wait_for(lambda t: "Reconciliation: predicted vs actual" in t and "Pessimism" in t)
        tmux("send-keys", "-t", session, "Escape")
        wait_for(lambda t: "Reconciliation: predicted vs actual" not in t)
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and tmux("has-session", "-t", session).returncode == 0:
            text = screen()
            if "Quit" in text and ("working" in text.lower()):  # orders working: the app asks first
                tmux("send-keys", "-t", session, "Tab")
                tmux("send-keys", "-t", session, "Enter")
            time.sleep(0.25)
        assert tmux("has-session", "-t", session).returncode != 0, f"session still alive:\n{screen()}"
    finally:
        tmux("kill-server")
