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


def _end_server(sock: list[str]) -> None:
    """Kill a private tmux server and remove its socket file (tmux leaves it behind)."""
    import os

    path = subprocess.run(["tmux", *sock, "display-message", "-p", "#{socket_path}"], capture_output=True, text=True,
                          timeout=10).stdout.strip()
    subprocess.run(["tmux", *sock, "kill-server"], capture_output=True, text=True, timeout=10)
    name = sock[-1]
    default = Path(f"/tmp/tmux-{os.getuid()}") / name
    for candidate in {Path(path) if path else default, default}:
        if candidate.name == name:
            candidate.unlink(missing_ok=True)


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
        _end_server(sock)


@pytest.mark.parametrize("how", ["SIGTERM", "hangup"])
def test_hydra_tui_stops_cleanly_on_sigterm_and_on_a_hung_up_terminal(tmp_path: Path, how: str) -> None:
    """SIGTERM to the app, or the terminal going away (the tmux server dies: SIGHUP), stops the
    engine cleanly: the log says so, the process ends, and after SIGTERM the exit status is 0."""
    import os
    import signal

    import psutil

    session = f"hydra-sig-{uuid.uuid4().hex[:8]}"
    sock = ["-L", session]

    def tmux(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", *sock, *args], capture_output=True, text=True, timeout=10)

    rc_file = tmp_path / "rc"
    app = f"env -u COLUMNS -u LINES TERM=xterm-256color {HYDRA_TUI} --data-dir {tmp_path} --day-seconds 0.5"
    cmd = f"sh -c '{app}; echo $? > {rc_file}'"
    started = subprocess.run(["tmux", *sock, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd],
                             capture_output=True, text=True, timeout=10)
    assert started.returncode == 0, started.stderr
    log = tmp_path / "sim-DU1234567" / "hydra.log"
    try:
        shell = psutil.Process(int(tmux("display-message", "-p", "-t", session, "#{pane_pid}").stdout.strip()))
        deadline = time.monotonic() + 40
        while not (log.exists() and "lockstep.day" in log.read_text()):
            assert time.monotonic() < deadline, f"no simulated day; screen:\n{tmux('capture-pane', '-p').stdout}"
            time.sleep(0.2)
        proc = next(c for c in shell.children(recursive=True) if "hydra-tui" in " ".join(c.cmdline()))
        if how == "SIGTERM":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            tmux("kill-server")  # the terminal hangs up: the app gets SIGHUP
        deadline = time.monotonic() + 40
        while _alive(proc):  # after a hangup the orphan may stay a zombie until someone reaps it
            assert time.monotonic() < deadline, f"hydra-tui (pid {proc.pid}) still running 40 s after {how}"
            time.sleep(0.2)
        if how == "SIGTERM":
            deadline = time.monotonic() + 10
            while not rc_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert rc_file.read_text().strip() == "0"
        text = log.read_text()
        assert "tui.signal" in text and ("SIGTERM" if how == "SIGTERM" else "SIGHUP") in text
        assert "engine.stopped" in text
    finally:
        _end_server(sock)


def _alive(proc: "psutil.Process") -> bool:  # noqa: F821 - psutil imported where used
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
