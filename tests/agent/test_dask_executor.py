"""The Dask executor against a real ``LocalCluster`` (worker processes on loopback): the same result
document as the local subprocess executor, TIMEOUT at the limit with the late result dropped, a
runaway killed on its worker, ERROR with the traceback, the same journal entries through the agent,
and the engine choosing it from the settings (exit 2 when Dask is missing or no scheduler answers)."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import aiosqlite
import pytest

from hydra_engine.agent.dask_executor import DaskExecutor, ExecutorUnavailable, check_scheduler_address
from hydra_engine.agent.experiments import ExperimentJob, ExperimentStatus, SubprocessExecutor
from hydra_engine.agent.hypotheses import Hypothesis
from hydra_engine.agent.loop import AgentConfig, AgentLoop, AutonomyLevel
from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.features import build_features, make_labels, tradable_returns
from hydra_engine.model.registry import ModelRegistry
from hydra_engine.store.migrations import v003_models, v004_agent, v006_market_champions

from .conftest import day, synthetic_bars

distributed = pytest.importorskip("distributed", reason="the Dask executor's tests need the dask extra")

ROOT = Path(__file__).resolve().parents[2]
LEAN = ["ret_1", "ret_5", "ret_10", "vol_20"]
ENTRIES = textwrap.dedent(
    '''
    import os, time
    from pathlib import Path
    def boom(params, inputs, work_dir):
        raise RuntimeError("candidate exploded: " + params["why"])
    def late(params, inputs, work_dir):
        time.sleep(params["sleep_s"])
        Path(params["marker"]).write_text("finished")
        return {"late": True}
    def hang(params, inputs, work_dir):
        Path(params["marker"]).write_text(str(os.getpid()))
        time.sleep(600)
    '''
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes and a scheduler on loopback, ports chosen by the OS."""
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                 scheduler_port=0, dashboard_address=None, silence_logs=40)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def entries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("entries")
    (d / "dask_test_entries.py").write_text(ENTRIES)
    return d


@pytest.fixture
async def dask_ex(cluster: Any) -> Any:
    ex = await DaskExecutor.connect(cluster.scheduler_address, kill_grace_s=30.0)
    yield ex
    await ex.shutdown()


def helper_job(tmp_path: Path, name: str, entry: str, params: dict[str, Any], limit: float, entries: Path) -> ExperimentJob:
    return ExperimentJob(name, params, str(tmp_path / name), limit, None, f"dask_test_entries:{entry}", (str(entries),))


async def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        await asyncio.sleep(0.05)


def comparable(doc: dict[str, Any], work_dir: str) -> dict[str, Any]:
    """A result document without its timings, with its own work dir written as WORK."""
    text = json.dumps(doc, sort_keys=True).replace(work_dir, "WORK")
    out = json.loads(text)
    out.pop("duration_s", None)
    out["result"].pop("wf_seconds", None)
    return out


async def test_same_result_document_as_the_subprocess_executor(tmp_path, dask_ex):
    bars = synthetic_bars(500, seed=1)
    inputs = tmp_path / "inputs.pkl"
    inputs.write_bytes(pickle.dumps({"features": build_features(bars), "labels": make_labels(bars), "returns": tradable_returns(bars)}))
    champion = BaselineModel(ModelSpec("logistic", features=tuple(LEAN), train_window_days=250)).fit(
        build_features(bars.iloc[:350]), make_labels(bars.iloc[:350]))
    champion_dir = champion.save(tmp_path / "models" / "champion")
    params = {"candidate_spec": {"family": "logistic", "train_window_days": 200, "features": LEAN}, "n_splits": 3,
              "test_window": 40, "min_train": 100, "full_history": False, "champion_model_dir": str(champion_dir)}
    local_job = ExperimentJob("exp-1", params, str(tmp_path / "local" / "exp-1"), 120, str(inputs))
    dask_job = ExperimentJob("exp-1", params, str(tmp_path / "dask" / "exp-1"), 120, str(inputs))
    local, remote = await asyncio.gather(SubprocessExecutor(1).run(local_job), dask_ex.run(dask_job))
    assert local.status is ExperimentStatus.OK, local.error
    assert remote.status is ExperimentStatus.OK, remote.error
    local_doc = json.loads(local_job.result_path.read_text())
    remote_doc = json.loads(dask_job.result_path.read_text())
    assert comparable(remote_doc, dask_job.work_dir) == comparable(local_doc, local_job.work_dir)
    # the worker's paths are the engine's again: the shipped champion and the candidate's model dir
    assert remote.result["champion"]["model_dir"] == str(champion_dir)
    assert remote.result["model_dir"] == str(Path(dask_job.work_dir) / "model")
    model = BaselineModel.load(remote.result["model_dir"])
    assert model.content_hash() == remote.result["content_hash"] == local.result["content_hash"]
    log_text = dask_job.log_path.read_text()
    assert log_text.startswith("# dask worker tcp://127.0.0.1:") and "worker.finished" in log_text
    assert remote.extra["worker"] in await dask_ex.client.nthreads()
    assert not list(Path(dask_job.work_dir).glob("*.tmp")) and dask_ex.running == []


async def test_a_raising_job_is_error_with_its_traceback(tmp_path, dask_ex, entries):
    job = helper_job(tmp_path, "boom", "boom", {"why": "bad seed"}, 60, entries)
    res = await dask_ex.run(job)
    assert res.status is ExperimentStatus.ERROR and res.returncode == 1
    assert "Traceback (most recent call last)" in res.error and "RuntimeError: candidate exploded: bad seed" in res.error
    assert "candidate exploded" in job.log_path.read_text() and "candidate exploded" in res.extra["log_tail"]
    assert json.loads(job.result_path.read_text())["ok"] is False


async def test_a_job_over_its_limit_is_timeout_and_its_late_result_dropped(tmp_path, dask_ex, entries):
    marker = tmp_path / "late.marker"
    job = helper_job(tmp_path, "late", "late", {"sleep_s": 2.5, "marker": str(marker)}, 1.0, entries)
    t0 = time.monotonic()
    res = await dask_ex.run(job)
    assert res.status is ExperimentStatus.TIMEOUT and time.monotonic() - t0 < 2.5
    assert "time limit of 1 s" in res.error and dask_ex.abandoned == ["late"] and dask_ex.running == []
    # the job really finishes on its worker later (the grace is 30 s), and its result goes nowhere:
    await wait_until(marker.exists, 30, "the late job finishes on its worker")
    key = "hydra-late"

    def known(dask_scheduler: Any) -> bool:
        return key in dask_scheduler.tasks

    deadline = time.monotonic() + 10
    while await dask_ex.client.run_on_scheduler(known):
        assert time.monotonic() < deadline, "the scheduler kept the abandoned task"
        await asyncio.sleep(0.05)
    assert not job.result_path.exists() and not job.log_path.exists()
    assert [p.name for p in Path(job.work_dir).iterdir()] == ["job.json"]
    # and the executor goes on: the next job runs normally
    ok = await dask_ex.run(helper_job(tmp_path, "next", "late", {"sleep_s": 0, "marker": str(tmp_path / "next.marker")}, 60, entries))
    assert ok.status is ExperimentStatus.OK and ok.result == {"late": True}


async def test_a_runaway_job_is_killed_on_its_worker(tmp_path, cluster, entries):
    ex = await DaskExecutor.connect(cluster.scheduler_address, kill_grace_s=0.5)
    try:
        marker = tmp_path / "hang.pid"
        res = await ex.run(helper_job(tmp_path, "hang", "hang", {"marker": str(marker)}, 1.5, entries))
        assert res.status is ExperimentStatus.TIMEOUT
        await wait_until(marker.exists, 20, "the hanging job starts")
        pid = int(marker.read_text())
        await wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 20, f"the worker kills the runaway child {pid}")
    finally:
        await ex.shutdown()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


async def _agent_run(tmp_path: Path, name: str, executor: Any, bars: Any) -> tuple[list[Any], list[Any]]:
    """One AgentLoop on its own store: a batch of two repairs against a seeded champion (one of them
    impossible: its window is shorter than the walk-forward's first training set), then the same
    hypotheses again with a time limit nobody meets. Returns its experiment rows and entries."""
    root = tmp_path / name
    root.mkdir()
    db = await aiosqlite.connect(root / "store.db")
    try:
        await db.executescript(v003_models.SQL + v004_agent.SQL + v006_market_champions.SQL)
        await db.commit()
        registry = ModelRegistry(db, root / "models")
        spec = ModelSpec("logistic", features=tuple(LEAN), train_window_days=250)
        model = BaselineModel(spec).fit(build_features(bars.iloc[:300]), make_labels(bars.iloc[:300]))
        champion = await registry.register(model, {"in_sample_log_loss": 0.68}, status="champion")
        hyps = [Hypothesis("refit", {}, "test", "refit on the latest data"),
                Hypothesis("retrain_recent", {"train_window_days": 120}, "test", "the recent window only")]
        for limit, cid in ((120.0, "c1"), (0.2, "c2")):
            cfg = AgentConfig(experiment_time_limit_s=limit, wf_test_window=60, wf_splits=3, wf_min_train=150,
                              initial_autonomy=AutonomyLevel.AUTONOMOUS)
            agent = AgentLoop(db, registry, executor, root / "experiments", cfg)
            await agent.start()
            inputs = await agent.prepare_inputs(bars)
            await agent.run_experiments(day(bars.index[-1]), cid, champion, spec, hyps, inputs, None)
        rows = await agent.journal.experiments()
        entries = await agent.journal.query(limit=1000)
        return rows, entries
    finally:
        await db.close()


async def test_the_agent_journals_the_same_entries_as_with_the_local_executor(tmp_path, cluster):
    bars = synthetic_bars(420, seed=4)
    local_rows, local_entries = await _agent_run(tmp_path, "local", SubprocessExecutor(2), bars)
    dask_ex = await DaskExecutor.connect(cluster.scheduler_address)
    try:
        dask_rows, dask_entries = await _agent_run(tmp_path, "dask", dask_ex, bars)
    finally:
        await dask_ex.shutdown()

    def rows(xs: list[Any]) -> list[tuple[Any, ...]]:
        """Everything but the experiment's random id (which the evaluation repeats) and its timings."""
        return sorted((x.cycle_id, x.hypothesis_key, x.status, x.outcome,
                       json.dumps(x.metrics, sort_keys=True).replace(x.experiment_id, "ID"),
                       x.candidate_version is not None) for x in xs)

    def entries(xs: list[Any]) -> list[tuple[Any, ...]]:
        return sorted((e.entry_type, e.cycle_id, e.outcome, (e.payload or {}).get("status")) for e in xs)

    assert rows(dask_rows) == rows(local_rows)
    assert entries(dask_entries) == entries(local_entries)
    # OK, ERROR (a 120-day window is shorter than wf_min_train) and TIMEOUT all journal alike
    assert {(x.hypothesis_key.split(":")[0], x.status) for x in dask_rows if x.cycle_id == "c1"} == {("refit", "OK"), ("retrain_recent", "ERROR")}
    assert "min_train: 150 exceeds train_window 120" in next(x.error for x in dask_rows if x.status == "ERROR")
    assert {(x.status, x.outcome) for x in dask_rows if x.cycle_id == "c2"} == {("TIMEOUT", "timeout")}
    assert all("dask worker" in Path(x.log_path).read_text() for x in dask_rows if x.cycle_id == "c1")


async def test_the_engine_takes_the_executor_from_the_settings(tmp_path, cluster, sim_universe):
    from hydra_engine.config import load_settings
    from hydra_engine.engine import Engine

    settings = load_settings(None, {"agent.executor": "dask", "agent.scheduler": cluster.scheduler_address})
    eng = Engine(settings, data_dir=tmp_path, universe=sim_universe)
    await eng.start()
    try:
        assert isinstance(eng.executor, DaskExecutor) and eng.executor.address == cluster.scheduler_address
        assert all(a.executor is eng.executor for a in eng.agent.markets.values())
    finally:
        await eng.stop()


async def test_an_unreachable_scheduler_is_refused_with_its_address():
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ExecutorUnavailable, match=f"agent.scheduler = 'tcp://127.0.0.1:{port}': no Dask scheduler answered"):
        await DaskExecutor.connect(f"tcp://127.0.0.1:{port}", timeout_s=1.0)
    assert time.monotonic() - t0 < 15
    for bad in (None, "", "127.0.0.1:8786", "http://host:8786", "tcp://host:99999"):
        with pytest.raises(ValueError, match="agent.scheduler"):
            check_scheduler_address(bad)
    assert check_scheduler_address(" tcp://10.0.0.5:8786 ") == "tcp://10.0.0.5:8786"


def test_headless_exits_2_when_dask_is_chosen_but_not_installed(tmp_path):
    hide = tmp_path / "no_dask"
    hide.mkdir()
    (hide / "distributed.py").write_text("raise ImportError('No module named distributed', name='distributed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), str(ROOT)])}
    env.pop("HYDRA_HOME", None)
    out = subprocess.run([sys.executable, "-m", "hydra_tui.cli", "--no-ui", "--days", "1", "--data-dir", str(tmp_path / "data"),
                          "--set", "agent.executor=dask", "--set", "agent.scheduler=tcp://127.0.0.1:8786"],
                         cwd=ROOT, capture_output=True, text=True, timeout=90, env=env)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "pip install -e '.[dask]'" in out.stderr and "agent.executor" in out.stderr


def test_a_dask_executor_without_a_scheduler_address_is_a_settings_error(tmp_path):
    from hydra_engine.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="agent.scheduler = nothing"):
        load_settings(None, {"agent.executor": "dask"})
    with pytest.raises(ConfigError, match="agent.executor = 'ray': must be one of 'local', 'dask'"):
        load_settings(None, {"agent.executor": "ray"})


def test_dask_is_imported_only_when_the_executor_is_chosen():
    code = ("import sys, hydra_engine.agent.dask_executor, hydra_engine.engine, hydra_engine.agent.experiment_worker; "
            "bad = [m for m in ('dask', 'distributed') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
