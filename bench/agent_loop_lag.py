"""Event-loop lag while the agent trains two experiments in subprocesses.

A ticker coroutine asks to wake every 10 ms and records how late it wakes (loop lag) while an
AgentLoop cycle runs: features are built, detectors fed, and two candidates (gradient boosting
on 1500 days, 5-fold walk-forward each) train in parallel through SubprocessExecutor. Baseline:
the same ticker with the loop otherwise idle. Goal: p99 lag < 10 ms.

Usage: python bench/agent_loop_lag.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiosqlite  # noqa: E402
import pandas as pd  # noqa: E402

from hydra_engine.agent.experiments import SubprocessExecutor  # noqa: E402
from hydra_engine.agent.hypotheses import Hypothesis  # noqa: E402
from hydra_engine.agent.loop import AgentConfig, AgentLoop, AutonomyLevel  # noqa: E402
from hydra_engine.model.baseline import ModelSpec  # noqa: E402
from hydra_engine.model.registry import ModelRegistry  # noqa: E402
from hydra_engine.store.migrations import v003_models, v004_agent, v006_market_champions  # noqa: E402

INTERVAL = 0.010


def bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = 0.01 * rng.standard_normal(n)
    close = 50 * np.exp(np.cumsum(r))
    idx = pd.bdate_range("2012-01-02", periods=n)
    return pd.DataFrame({"open": close, "high": close * 1.005, "low": close * 0.995, "close": close,
                         "volume": rng.integers(800, 1200, n)}, index=idx)


async def measure(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(INTERVAL)
        lags.append((time.perf_counter() - t - INTERVAL) * 1000.0)


def pct(xs: list[float]) -> str:
    a = np.asarray(xs)
    return f"n={a.size:5d}  p50={np.percentile(a, 50):6.2f}  p99={np.percentile(a, 99):6.2f}  max={a.max():7.2f} ms"


async def main() -> None:
    idle: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(measure(stop, idle))
    await asyncio.sleep(3.0)
    stop.set()
    await task

    d = Path(tempfile.mkdtemp(prefix="hydra-lag-"))
    conn = await aiosqlite.connect(d / "store.db")
    await conn.executescript(v003_models.SQL + v004_agent.SQL + v006_market_champions.SQL)
    registry = ModelRegistry(conn, d / "models")
    cfg = AgentConfig(experiment_time_limit_s=300, wf_test_window=100, initial_autonomy=AutonomyLevel.SUPERVISED,
                      default_spec={"family": "hist_gb", "train_window_days": 750})
    agent = AgentLoop(conn, registry, SubprocessExecutor(max_parallel=2), d / "exp", cfg)
    await agent.start()
    data = bars(1600)
    inputs = await agent.prepare_inputs(data)
    spec = ModelSpec.from_dict(cfg.default_spec)
    hyps = [Hypothesis("bench", {"train_window_days": w}, "bench", "bench") for w in (750, 500)]

    busy: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(measure(stop, busy))
    t0 = time.perf_counter()
    outcomes = await agent.run_experiments(data.index[-1].date(), "bench", None, spec, hyps, inputs, None)
    wall = time.perf_counter() - t0
    stop.set()
    await task
    await conn.close()
    print("\nEvent-loop lag (ticker every 10 ms)")
    print(f"idle                          {pct(idle)}")
    print(f"two experiments training      {pct(busy)}")
    print(f"experiments: {[(o.status, round(o.duration_s, 1)) for o in outcomes]}, batch wall {wall:.1f} s")
    print("Goal: p99 < 10 ms while two experiments train.")


if __name__ == "__main__":
    asyncio.run(main())
