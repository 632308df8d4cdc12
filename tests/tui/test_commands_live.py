"""Commands beside a running engine: a real ``hydra-tui --no-ui`` subprocess on the embedded
exchange. ``status`` exits 0 while it runs healthy, a ``pause`` goes through the engine's inbox and
``status`` shows it (exit 1), ``resume`` clears it, a refused ``rollback`` exits 1 with the
engine's reason, ``flatten`` reaches the engine, and ``paper-trade stop`` ends it cleanly (exit 0,
``status`` then 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from commands_helpers import NO_AGENT, ROOT, env, hydra, hydra_json, wait_for


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A headless engine running until stopped (a simulated day every 2 real seconds)."""
    data = tmp_path / "live"
    log = open(tmp_path / "engine.out", "w")  # a file, not a pipe nobody reads: the engine never blocks on it
    proc = subprocess.Popen([sys.executable, "-m", "hydra_tui.cli", "--no-ui", "--data-dir", str(data), *NO_AGENT,
                             "--set", "runner.lockstep_delay_s=2"],
                            cwd=ROOT, env=env(), stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield data, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def status(data: Path) -> tuple[int, Any]:
    return hydra_json("status", "--data-dir", str(data), timeout=60)


def test_status_pause_resume_flatten_and_stop_beside_a_running_engine(engine: tuple[Path, subprocess.Popen[str]]) -> None:
    data, proc = engine
    code, body = wait_for(lambda: (s := status(data))[0] == 0 and s, 90, what="status exit 0 (healthy)")
    assert body["status"] == "healthy" and body["pid"] == proc.pid and body["reasons"] == []
    assert body["engine"]["mode"] == "SIM" and body["engine"]["connected"] is True

    out = hydra("pause", "--data-dir", str(data), "--reason", "cli test", timeout=60)
    assert out.returncode == 0, out.stderr
    assert "paused (cli test)" in out.stdout and f"engine pid {proc.pid}" in out.stdout
    code, body = wait_for(lambda: (s := status(data))[0] == 1 and s, 15, what="status exit 1 (paused)")
    assert body["status"] == "degraded" and any("paused (cli test)" in r for r in body["reasons"])
    code, journal = hydra_json("journal", "--data-dir", str(data), "--type", "command", "--outcome", "pause")
    assert code == 0 and journal["entries"]
    assert any(e["actor"].startswith("cli:") and "request" in e["summary"] for e in journal["entries"])

    out = hydra("resume", "--data-dir", str(data), timeout=60)
    assert out.returncode == 0 and "resumed" in out.stdout, out.stderr
    wait_for(lambda: status(data)[0] == 0, 15, what="status exit 0 after resume")

    refused = hydra("rollback", "--data-dir", str(data), "--market", "ZO", timeout=60)
    assert refused.returncode == 1 and "the engine refused" in refused.stderr and "previous champion" in refused.stderr

    out = hydra("flatten", "--data-dir", str(data), "--yes", timeout=60)
    assert out.returncode == 0 and "flatten started" in out.stdout, out.stderr

    out = hydra("paper-trade", "stop", "--data-dir", str(data), timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"pid {proc.pid}" in out.stdout and "stopped" in out.stdout
    assert proc.wait(timeout=30) == 0
    code, body = status(data)
    assert code == 2 and body["status"] == "down" and "stopped" in body["reasons"][0]
    again = hydra("paper-trade", "stop", "--data-dir", str(data), timeout=60)
    assert again.returncode == 2 and "no engine runs" in again.stderr


def test_a_request_the_engine_never_takes_is_withdrawn(tmp_path: Path) -> None:
    """An engine that holds the store but does not answer (here: a bare lock holder): exit 1, nothing left pending."""
    import sqlite3

    from commands_helpers import STORE, copy_store
    from hydra_engine.store.lock import StoreLock

    made = hydra("--no-ui", "--days", "0", "--data-dir", str(tmp_path / "src"), *NO_AGENT, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    data = copy_store(tmp_path / "src", tmp_path / "d")
    held = StoreLock.acquire(data / STORE / "hydra.lock")
    try:
        out = hydra("pause", "--data-dir", str(data), "--timeout", "1", timeout=60)
    finally:
        held.release()
    assert out.returncode == 1 and "withdrawn" in out.stderr
    con = sqlite3.connect(data / STORE / "hydra.db")
    try:
        rows = con.execute("SELECT status, outcome FROM operator_requests").fetchall()
    finally:
        con.close()
    assert rows == [("FAILED", "withdrawn: no engine picked it up in time")]
