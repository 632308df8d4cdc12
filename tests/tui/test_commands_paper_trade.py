"""``hydra-tui paper-trade start`` against a gateway: the embedded exchange run standalone (``hydra-tui
sim --port 0``, the real TWS wire protocol on loopback) stands in for IB Gateway. The panel shows
PAPER and the port, ``status`` finds the IB store and a connected PAPER engine, and ``paper-trade
stop`` ends it cleanly (exit 0)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from commands_helpers import NO_AGENT, ROOT, env, hydra, hydra_json, wait_for

LISTENING = re.compile(r"sim_standalone_listening.*?port=(?:\x1b\[[0-9;]*m)*(\d+)")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[int]:
    """A standalone embedded exchange on a free loopback port, wall-clock time; yields its port."""
    proc = subprocess.Popen([sys.executable, "-m", "hydra_tui.cli", "sim", "--port", "0", "--state",
                             str(tmp_path / "gateway.json")], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    found: list[int] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # read everything, so the exchange never blocks on a full pipe
            m = LISTENING.search(line)
            if m and not found:
                found.append(int(m.group(1)))
                ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "the standalone exchange did not report its port"
        yield found[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


def test_paper_trade_start_shows_the_panel_and_stop_ends_it(gateway: int, tmp_path: Path) -> None:
    data = tmp_path / "paper"
    out_path = tmp_path / "paper-trade.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hydra_tui.cli", "paper-trade", "start", "--port", str(gateway),
                                 "--client-id", "7", "--data-dir", str(data), *NO_AGENT],
                                cwd=ROOT, env=env(), stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            def running() -> object:
                code, body = hydra_json("status", "--data-dir", str(data), timeout=60)
                return body if body and body.get("pid") == proc.pid and body.get("engine") else None

            body = wait_for(running, 120, interval_s=1.0, what="a status snapshot from the paper engine")
            assert body["engine"]["mode"] == "PAPER" and body["engine"]["connected"] is True
            assert body["store"] == str(data / "ib-DU1234567")
            text = out_path.read_text()
            assert "HYDRA paper trading" in text and "PAPER" in text and f"{gateway} (custom)" in text

            stop = hydra("paper-trade", "stop", "--data-dir", str(data), timeout=150)
            assert stop.returncode == 0, stop.stderr
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    code, body = hydra_json("status", "--data-dir", str(data), timeout=60)
    assert code == 2 and "stopped" in body["reasons"][0]
