"""Event-loop lag with the TUI open, next to the same engine headless, in one run.

Both sides run the real engine on the embedded exchange (seed 7, lock-step, agent on, fresh store),
play three days, then measure a ticker that asks to wake every 10 ms (its lateness is the loop's
lag): first idle for 3 s, then while the workload runs: one more lock-step day (every market's
cycle, its orders and its session's fills) together with two experiments trained in subprocesses
through the market's agent (``AgentLoop.run_experiments``: a 250-day retrain and a change of family
to gradient boosting). Headless: the engine on plain asyncio. TUI: the same inside ``HydraApp`` on
Textual's loop (``App.run_test`` at 160x50: the full layout, compositor and 2 Hz pane refresh run;
the frames go to Textual's headless driver instead of a terminal). Goal: p99 < 20 ms with the TUI.

Usage: python bench/tui_loop_lag.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INTERVAL = 0.010
WARM_DAYS = 3


async def ticker(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(INTERVAL)
        lags.append((time.perf_counter() - t - INTERVAL) * 1000.0)


async def measure(work: Any) -> tuple[list[float], float, Any]:
    lags: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(ticker(stop, lags))
    t0 = time.perf_counter()
    result = await work
    wall = time.perf_counter() - t0
    stop.set()
    await task
    return lags, wall, result


async def workload(engine: Any) -> list[Any]:
    """One lock-step day and two experiments in subprocesses, at the same time."""
    from hydra_engine.agent.hypotheses import Hypothesis
    from hydra_engine.model.baseline import ModelSpec
    from hydra_tui.widgets.view import agent_loops

    market, loop = next(iter(agent_loops(engine).items()))
    bars = await engine.store.bars.load(market, limit=engine.cycle_config.bars_for_features)
    inputs = await loop.prepare_inputs(bars)
    spec = ModelSpec.from_dict(loop.config.default_spec)
    hyps = [Hypothesis("retrain_recent", {"train_window_days": 250}, "bench", "loop-lag bench"),
            Hypothesis("change_family", {"family": "hist_gb"}, "bench", "loop-lag bench")]
    day = asyncio.create_task(engine.run_days(1))
    outcomes = await loop.run_experiments(bars.index[-1].date(), "bench-lag", None, spec, hyps, inputs, None)
    await day
    return [(o.status, round(o.duration_s or 0.0, 1)) for o in outcomes]


def pct(xs: list[float]) -> str:
    a = np.asarray(xs) if xs else np.zeros(1)
    return f"n={a.size:5d}  p50={np.percentile(a, 50):6.2f}  p99={np.percentile(a, 99):7.2f}  max={a.max():8.2f} ms"


def settings() -> Any:
    from hydra_engine.config import load_settings

    return load_settings(None, {})


async def headless(data_dir: Path) -> tuple[list[float], list[float], float, Any]:
    from hydra_engine.engine import Engine

    engine = Engine(settings(), data_dir=data_dir, seed=7)
    await engine.start()
    try:
        await engine.run_days(WARM_DAYS)
        idle, _, _ = await measure(asyncio.sleep(3.0))
        busy, wall, outcomes = await measure(workload(engine))
    finally:
        await engine.stop()
    return idle, busy, wall, outcomes


async def with_tui(data_dir: Path) -> tuple[list[float], list[float], float, Any]:
    from hydra_tui.app import HydraApp

    app = HydraApp(settings(), data_dir=data_dir, seed=7, day_seconds=0, days=WARM_DAYS)
    async with app.run_test(size=(160, 50)) as pilot:
        deadline = time.monotonic() + 180
        while not (app.engine is not None and app.days_played >= WARM_DAYS):
            if time.monotonic() > deadline:
                raise SystemExit("the TUI did not play its warm-up days in 180 s")
            await pilot.pause(0.1)
        idle, _, _ = await measure(asyncio.sleep(3.0))
        busy, wall, outcomes = await measure(workload(app.engine))
        await app.shutdown()
    return idle, busy, wall, outcomes


async def main() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="hydra-lag-") as d:
        h_idle, h_busy, h_wall, h_out = await headless(Path(d) / "headless")
        t_idle, t_busy, t_wall, t_out = await with_tui(Path(d) / "tui")
    print(f"\nEvent-loop lag, ticker every {INTERVAL * 1000:.0f} ms ({os.cpu_count()} CPUs)")
    print(f"headless  idle                        {pct(h_idle)}")
    print(f"headless  day + two experiments       {pct(h_busy)}   ({h_wall:.1f} s; experiments {h_out})")
    print(f"TUI open  idle                        {pct(t_idle)}")
    print(f"TUI open  day + two experiments       {pct(t_busy)}   ({t_wall:.1f} s; experiments {t_out})")
    print("Goal: p99 < 20 ms with the TUI open.")


if __name__ == "__main__":
    asyncio.run(main())
