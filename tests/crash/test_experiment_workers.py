"""Defect 5 of issue 13: experiment workers die with the engine, and a start reaps any a crash
left. A real ``hydra-tui --no-ui`` subprocess is SIGKILLed while its agent's experiment worker
trains; the worker must be gone within a few seconds. A stray left by an older engine (a
process that does not watch its parent, with its lease file) is killed by the next start."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from crash_procs import Child, run_engine, store_dir

from hydra_engine.agent.experiments import WORKER_MODULE, _is_worker

pytestmark = pytest.mark.timeout(180)


async def test_a_sigkilled_engine_leaves_no_experiment_worker(tmp_path) -> None:
    data = tmp_path / "data"
    # experiments right after an alarm (not after whole windows of evidence): one starts within days
    child = await Child("--no-ui", "--data-dir", str(data), "--days", "40",
                        "--set", "agent.evidence_since_alarm=false").start()
    try:
        m = await child.wait_for(r"experiment\.started'.*? pid=(\d+)", timeout=90)
        assert m is not None, child.output()[-3000:]
        pid = int(m.group(1))
        assert _is_worker(pid), "the worker should be training when the engine is killed"
        child.sigkill()
        assert await child.wait(20) == -9
        deadline = time.monotonic() + 1.0  # a worker trains ~2 s: it must go at once, not finish
        while _is_worker(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _is_worker(pid), f"experiment worker {pid} outlived the killed engine"
    finally:
        child.sigkill()


def test_a_start_reaps_a_stray_worker_left_by_a_crash(tmp_path) -> None:
    data = tmp_path / "data"
    first = run_engine(data, 1)
    assert first.returncode == 0, first.stderr[-3000:]
    leases = store_dir(data) / "experiments"
    leases.mkdir(parents=True, exist_ok=True)  # a one-day run may have started no experiment yet
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", WORKER_MODULE, "job.json"],
                             start_new_session=True)  # fmt: skip
    try:
        lease = leases / f"worker-{stray.pid}.lease"
        lease.write_text(json.dumps({"pid": stray.pid, "parent_pid": 999999, "experiment_id": "exp-stray"}))
        again = run_engine(data, 0)
        assert again.returncode == 0, again.stderr[-3000:]
        assert stray.wait(5) == -9, "the stray worker was not reaped at start"
        assert "experiment.stray_worker_reaped" in again.stderr
        assert not lease.exists()
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
