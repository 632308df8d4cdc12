"""``hydra-tui --no-ui``, ``replay`` and ``fill-report`` as real subprocesses on a tmp data dir."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_AGENT = ["--set", "agent.enabled=false"]
ALWAYS_TAKE_A_SIDE = ["--set", "execution.long_threshold=0.5", "--set", "execution.short_threshold=0.5"]
"""The command's mechanics are under test, not the champion's edge: orders within two days."""  # no experiment subprocesses where they only cost time


def hydra(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_HOME", None)
    return subprocess.run([sys.executable, "-m", "hydra_tui.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def query(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_headless_days_then_fill_report(tmp_path) -> None:
    out = hydra("--no-ui", "--days", "2", "--data-dir", str(tmp_path), *ALWAYS_TAKE_A_SIDE)  # agent included
    assert out.returncode == 0, out.stderr[-3000:]
    assert "textual" not in out.stderr.lower()
    assert "HYDRA SIM: 4 cycle(s)" in out.stdout
    store = tmp_path / "sim-DU1234567"
    db = store / "hydra.db"
    rows = query(db, "SELECT market, trading_date, status FROM cycles ORDER BY trading_date, market")
    assert len(rows) == 4 and {r[2] for r in rows} == {"FINISHED"}
    assert len({(r[0], r[1]) for r in rows}) == 4
    n_fills = query(db, "SELECT COUNT(*) FROM fills WHERE predicted_slippage IS NOT NULL AND actual_slippage IS NOT NULL")[0][0]
    assert n_fills > 0
    assert query(db, "SELECT market FROM models WHERE status = 'champion' ORDER BY market") == [("CL",), ("ZO",)]
    assert query(db, "SELECT COUNT(*) FROM agent_journal WHERE entry_type = 'observation'")[0][0] >= 1
    assert (store / "exchange.json").exists() and (store / "hydra.log").stat().st_size > 0
    assert "engine.stopped" in (store / "hydra.log").read_text()

    report = hydra("fill-report", "--data-dir", str(tmp_path), "--reconcile", "--limit", "5", timeout=60)
    assert report.returncode == 0, report.stderr[-3000:]
    for header in ("Time", "Symbol", "Dir", "Qty", "Order Price", "Fill Price", "Pred Slip", "Actual Slip", "Latency"):
        assert header in report.stdout
    assert "Reconciliation" in report.stdout and "pessimism multiplier" in report.stdout

    # a second run on the same store resumes the account and does not repeat a cycle
    again = hydra("--no-ui", "--days", "1", "--data-dir", str(tmp_path), *NO_AGENT)
    assert again.returncode == 0, again.stderr[-3000:]
    rows2 = query(db, "SELECT market, trading_date FROM cycles")
    assert len(rows2) == 6 and len(set(rows2)) == 6


def test_fill_report_without_a_store_is_a_clear_error(tmp_path) -> None:
    out = hydra("fill-report", "--data-dir", str(tmp_path), timeout=60)
    assert out.returncode == 2
    assert "no store" in out.stderr and str(tmp_path) in out.stderr


def test_replay_prints_a_report_on_a_temporary_store(tmp_path) -> None:
    # --data-dir keeps the store there (issue 7); without it the data dir is left alone
    out = hydra("replay", "--days", "2", "--set", f"store.data_dir={tmp_path}", *NO_AGENT)
    assert out.returncode == 0, out.stderr[-3000:]
    for word in ("2 trading day(s)", "cycles", "orders", "fills", "P&L", "max drawdown", "agent", "Reconciliation"):
        assert word in out.stdout
    assert "cycles        4" in out.stdout
    assert not any(tmp_path.iterdir())  # a fresh temporary store, not the data dir


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_an_endless_run_cleanly_without_textual(tmp_path, sig) -> None:
    """SIGTERM (a service manager) and SIGHUP (a hung-up terminal) stop ``--no-ui`` with exit 0, the
    engine stopped cleanly; ``-X importtime`` lists every module imported: textual is never one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    err_file = tmp_path / "stderr.txt"  # the import log is long: a file, never a pipe that could fill and block
    with open(err_file, "w") as err_out:
        proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "hydra_tui.cli", "--no-ui", "--data-dir",
                                 str(tmp_path), *NO_AGENT, "--day-seconds", "0.2"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=err_out, text=True, env=env)
        log = tmp_path / "sim-DU1234567" / "hydra.log"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait for the first simulated day to finish
                if log.exists() and "lockstep.day" in log.read_text():
                    break
                assert proc.poll() is None, err_file.read_text()[-3000:]
                time.sleep(0.1)
            else:
                raise AssertionError("no simulated day within 60 s")
            proc.send_signal(sig)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    err = err_file.read_text()
    assert proc.returncode == 0, err[-3000:]
    text = log.read_text()
    assert "headless.signal" in text and sig.name in text and "engine.stopped" in text
    assert "HYDRA SIM" in out
    imported = [line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if line.startswith("import time:")]
    assert "hydra_engine.engine" in imported  # the import log is there
    assert not [m for m in imported if m == "textual" or m.startswith("textual.")]


def test_live_without_confirmation_exits_2_before_connecting(tmp_path) -> None:
    # refused before any socket is opened, so the port is never contacted
    out = hydra("--no-ui", "--broker", "ib", "--port", "1", "--data-dir", str(tmp_path),
                "--set", "broker.trading_mode=live", "--yes-i-mean-live", timeout=60)
    assert out.returncode == 2
    assert "HYDRA_LIVE_CONFIRMED" in out.stderr
    assert not (tmp_path / "ib-").exists() and not any(p.name.startswith("ib-") for p in tmp_path.iterdir())


def test_bad_setting_names_the_key(tmp_path) -> None:
    out = hydra("--no-ui", "--days", "1", "--data-dir", str(tmp_path), "--set", "execution.long_threshold=2", timeout=60)
    assert out.returncode == 2
    assert "execution.long_threshold" in out.stderr and "between" in out.stderr


def test_a_bad_day_seconds_is_refused_headless_too(tmp_path) -> None:
    out = hydra("--no-ui", "--day-seconds", "-1", "--data-dir", str(tmp_path), timeout=60)
    assert out.returncode == 2
    assert "--day-seconds -1.0: must be between 0 and 3600" in out.stderr
