"""`hydra-tui serve`: a real subprocess binds loopback on a free port and answers HTTP, then stops."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from hydra_tui.serve import app_command

HYDRA_TUI = str(Path(sys.executable).with_name("hydra-tui"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_app_command_runs_this_interpreters_app() -> None:
    cmd = app_command(["--data-dir", "d d"])
    assert cmd.startswith(sys.executable) and cmd.endswith("-m hydra_tui.cli --data-dir 'd d'")


def test_serve_binds_loopback_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([HYDRA_TUI, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        status, body = 0, ""
        while time.monotonic() < deadline:
            try:
                status, body = _get(port)
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200 and "HYDRA" in body
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode is not None
