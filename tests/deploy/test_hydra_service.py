"""deploy/hydra.service: its keys say what the operator guide promises (paper port, restart on
failure but not on a refusal, SIGTERM stop with enough time, journal logging, a dedicated user, the
live confirmation kept out of the unit), systemd itself accepts it, and its own ExecStart line,
pointed at a real ``hydra-tui sim``, starts the engine and stops it with exit 0 on SIGTERM."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from hydra_engine.config import LIVE_PORTS, RunnerConfig

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "hydra.service"
ENV_EXAMPLE = ROOT / "deploy" / "hydra.env.example"


def unit_keys(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values, as systemd reads them (a key may repeat; comments ignored)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{UNIT.name}: not a key=value line: {raw!r}"
        out.setdefault(section, {}).setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def keys() -> dict[str, dict[str, list[str]]]:
    return unit_keys(UNIT.read_text())


def one(keys: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = keys[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: expected one value, got {values}"
    return values[0]


def exec_start(keys: dict[str, dict[str, list[str]]]) -> list[str]:
    return shlex.split(one(keys, "Service", "ExecStart"))


def test_the_unit_runs_the_headless_engine_on_the_paper_port(keys):
    argv = exec_start(keys)
    assert Path(argv[0]).name == "hydra-tui" and Path(argv[0]).is_absolute()
    assert argv[1:4] == ["--no-ui", "--broker", "ib"]
    port = int(argv[argv.index("--port") + 1])
    assert port == 4002 and port not in LIVE_PORTS
    assert "--yes-i-mean-live" not in argv
    data_dir = argv[argv.index("--data-dir") + 1]
    assert one(keys, "Service", "StateDirectory") == "hydra" and data_dir == "/var/lib/hydra"
    assert one(keys, "Service", "User") == "hydra" and one(keys, "Service", "Group") == "hydra"
    assert one(keys, "Install", "WantedBy") == "multi-user.target"


def test_restart_on_failure_but_never_after_a_refusal(keys):
    assert one(keys, "Service", "Restart") == "on-failure"
    assert one(keys, "Service", "RestartPreventExitStatus") == "2"  # hydra-tui's exit code for refused input
    assert float(one(keys, "Service", "RestartSec")) >= 5
    assert one(keys, "Unit", "StartLimitIntervalSec") == "0"  # weeks unattended: never give up


def test_sigterm_stop_with_time_for_a_clean_stop_and_logs_in_the_journal(keys):
    assert one(keys, "Service", "KillSignal") == "SIGTERM"
    assert one(keys, "Service", "KillMode") == "mixed"
    assert float(one(keys, "Service", "TimeoutStopSec")) > RunnerConfig().stop_timeout_s + 30
    assert one(keys, "Service", "StandardError") == "journal"
    assert one(keys, "Service", "SyslogIdentifier") == "hydra"


def test_the_live_confirmation_lives_in_the_environment_file_never_in_the_unit(keys):
    env_lines = keys["Service"].get("Environment", [])
    assert not any("HYDRA_LIVE_CONFIRMED" in v for v in env_lines)
    assert one(keys, "Service", "EnvironmentFile") == "-/etc/hydra/hydra.env"
    example = [ln for ln in ENV_EXAMPLE.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert example == [], f"{ENV_EXAMPLE.name} must set nothing by default, found {example}"
    assert "#HYDRA_LIVE_CONFIRMED=true" in ENV_EXAMPLE.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path, keys):
    hydra_tui = Path(sys.executable).with_name("hydra-tui")
    assert hydra_tui.exists(), "hydra-tui is not installed beside this interpreter"
    # verify checks that the binary exists: point ExecStart at this venv's hydra-tui
    text = UNIT.read_text().replace(exec_start(keys)[0], str(hydra_tui))
    unit = tmp_path / "hydra.service"
    unit.write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 even for an unknown key or a bad value: any message at all is a defect
    assert out.returncode == 0 and out.stderr.strip() == "" and out.stdout.strip() == "", out.stderr + out.stdout


class _Lines:
    """A child's output stream read by a thread, so the test can wait for a line with a timeout."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cv:
                self.lines.append(line)
                self._cv.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cv:
            while True:
                for line in self.lines[seen:]:
                    if m := rx.search(line):
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                assert left > 0, f"no line matching {pattern!r} within {timeout} s; last lines: {self.lines[-5:]}"
                self._cv.wait(left)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def test_the_units_own_command_starts_against_a_gateway_and_exits_0_on_sigterm(tmp_path, keys):
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_HOME", "HYDRA_LIVE_CONFIRMED")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    hydra = [sys.executable, "-m", "hydra_tui.cli"]
    # the standalone exchange logs to stdout, the engine to stderr (its summary goes to stdout)
    gateway = subprocess.Popen([*hydra, "sim", "--port", "0", "--state", str(tmp_path / "gateway.json")], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    engine = None
    try:
        port = _Lines(gateway.stdout).wait_for(r"sim_standalone_listening.*port=(\d+)", 60).group(1)
        argv = exec_start(keys)[1:]  # the unit's arguments, with this test's gateway port and data dir
        argv[argv.index("--port") + 1] = port
        argv[argv.index("--data-dir") + 1] = str(tmp_path / "data")
        engine = subprocess.Popen([*hydra, *argv, "--set", "agent.enabled=false"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines = _Lines(engine.stderr)
        lines.wait_for(r"event='engine\.started'.*mode='PAPER'", 90)
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=float(one(keys, "Service", "TimeoutStopSec"))) == 0, "".join(lines.lines[-20:])
        lines.wait_for(r"event='engine\.stopped'", 5)
        assert engine.stdout is not None and "HYDRA PAPER" in engine.stdout.read()
        assert (tmp_path / "data" / "ib-DU1234567" / "hydra.db").exists()
    finally:
        if engine is not None:
            _stop(engine)
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(timeout=30)
        finally:
            _stop(gateway)
