"""Real subprocess experiments: success, a raising entry, a hanging one killed at its limit while
the event loop stays responsive; all journalled. The pool adapter abandons a late job."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing as mp
import pickle
import textwrap
import time

import pytest

from hydra_engine.agent.experiments import (
    ExperimentJob,
    ExperimentStatus,
    PoolExecutor,
    SubprocessExecutor,
)
from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.model.baseline import BaselineModel

from .conftest import synthetic_bars

HELPERS = textwrap.dedent(
    '''
    import time
    def boom(params, inputs, work_dir):
        raise RuntimeError("candidate exploded: " + params["why"])
    def hang(params, inputs, work_dir):
        print("hanging", flush=True)
        time.sleep(600)
    def quick(params, inputs, work_dir):
        return {"echo": params["x"], "n": 0 if inputs is None else len(inputs)}
    '''
)


@pytest.fixture
def helper_dir(tmp_path):
    d = tmp_path / "helpers"
    d.mkdir()
    (d / "agent_test_entries.py").write_text(HELPERS)
    return d


def job(tmp_path, name, entry, params, limit, helper_dir=None, inputs=None):
    return ExperimentJob(name, params, str(tmp_path / name), limit, inputs, entry, (str(helper_dir),) if helper_dir else ())


async def test_real_training_experiment_succeeds(tmp_path):
    from hydra_engine.model.features import (
        build_features,
        make_labels,
        tradable_returns,
    )

    bars = synthetic_bars(500, seed=1)
    inputs = tmp_path / "inputs.pkl"
    inputs.write_bytes(pickle.dumps({"features": build_features(bars), "labels": make_labels(bars), "returns": tradable_returns(bars)}))
    spec = {"family": "logistic", "train_window_days": 200, "features": ["ret_1", "ret_5", "vol_20"]}
    ex = SubprocessExecutor(max_parallel=2)
    res = await ex.run(job(tmp_path, "ok1", "hydra_engine.agent.experiment_worker:evaluate_candidate",
                           {"candidate_spec": spec, "n_splits": 3, "test_window": 40, "min_train": 100, "full_history": False}, 120, inputs=str(inputs)))
    assert res.status is ExperimentStatus.OK, res.error
    out = res.result
    assert len(out["candidate"]["window_log_loss"]) == 3 and len(out["daily"]["candidate_log_loss"]) == 120
    model = BaselineModel.load(out["model_dir"])
    assert model.content_hash() == out["content_hash"]
    assert "worker.finished" in (tmp_path / "ok1" / "experiment.log").read_text()


async def test_raising_and_hanging_experiments_are_contained(tmp_path, helper_dir, conn):
    journal = ExperimentJournal(conn)
    ex = SubprocessExecutor(max_parallel=2, kill_grace_s=0.5)
    boom = job(tmp_path, "boom", "agent_test_entries:boom", {"why": "bad seed"}, 60, helper_dir)
    hang = job(tmp_path, "hang", "agent_test_entries:hang", {}, 3.0, helper_dir)
    for j in (boom, hang):
        await journal.start_experiment(j.experiment_id, j.experiment_id, diagnosis="test", config_diff={}, trading_date="2024-01-02",
                                       cycle_id="c1", log_path=str(j.log_path))

    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.02)
            lags.append(time.perf_counter() - t - 0.02)

    tick = asyncio.create_task(ticker())
    t0 = time.monotonic()
    r_boom, r_hang = await asyncio.gather(ex.run(boom), ex.run(hang))
    elapsed = time.monotonic() - t0
    stop.set()
    await tick
    assert r_boom.status is ExperimentStatus.ERROR and "candidate exploded: bad seed" in r_boom.error
    assert r_hang.status is ExperimentStatus.TIMEOUT and "time limit" in r_hang.error
    assert 3.0 <= elapsed < 30
    assert "hanging" in hang.log_path.read_text()
    assert ex.running == []
    assert max(lags) < 0.5  # the loop kept ticking while children ran and were killed
    for r in (r_boom, r_hang):
        await journal.finish_experiment(r.experiment_id, status=r.status.value, outcome=r.status.value.lower(), metrics={},
                                        error=r.error, duration_s=r.duration_s)
    rows = {x.experiment_id: x for x in await journal.experiments()}
    assert rows["boom"].status == "ERROR" and "exploded" in rows["boom"].error
    assert rows["hang"].status == "TIMEOUT" and rows["hang"].duration_s >= 3.0
    assert [x.experiment_id for x in await journal.experiments(status="TIMEOUT")] == ["hang"]


async def test_pool_executor_abandons_late_job(tmp_path, helper_dir):
    ctx = mp.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        ex = PoolExecutor(pool)
        quick = await ex.run(job(tmp_path, "q", "agent_test_entries:quick", {"x": 7}, 60, helper_dir))
        assert quick.status is ExperimentStatus.OK and quick.result == {"echo": 7, "n": 0}
        late = await ex.run(job(tmp_path, "late", "agent_test_entries:hang", {}, 1.0, helper_dir))
        assert late.status is ExperimentStatus.ABANDONED
        for p in list(pool._processes.values()):  # the hanging worker cannot finish by itself
            p.kill()


def test_job_validation(tmp_path):
    with pytest.raises(ValueError, match="time_limit_s"):
        ExperimentJob("x", {}, str(tmp_path), 0)
    with pytest.raises(ValueError, match="module:function"):
        ExperimentJob("x", {}, str(tmp_path), 1, entry="nocolon")
