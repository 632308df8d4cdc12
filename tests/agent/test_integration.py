"""A scenario with a known change date drives the agent: detection, diagnosis, a real experiment in
a real subprocess, approval in supervised mode, promotion, then a forced rollback, all journalled."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd

from hydra_engine.agent.diagnose import DiagnosisKind
from hydra_engine.agent.experiments import SubprocessExecutor
from hydra_engine.agent.hypotheses import PlaybookConfig
from hydra_engine.agent.loop import AgentConfig, AgentLoop, AgentPhase, AutonomyLevel
from hydra_engine.model.registry import ModelRegistry
from hydra_engine.sim.scenarios import ScenarioChoice
from hydra_engine.sim.universe import build_universe

CHANGE = dt.date(2020, 9, 1)
LEAN = ("ret_1", "ret_5", "ret_10", "vol_20", "trend_20")


def sim_bars() -> tuple[pd.DataFrame, dt.date]:
    # The edge is planted in close-to-close returns; the models are scored on the tradable
    # (next open -> following open) return, which keeps only part of it, hence 0.4 (not 0.35).
    u = build_universe(
        seed=3, symbols=["CL"], start=dt.date(2016, 1, 1), end=dt.date(2022, 12, 30),
        scenarios={"CL": ScenarioChoice("momentum_flip", change_dates=(CHANGE,), overrides={"coefficient": (0.4, -0.4)})},
    )
    info = u.scenario("CL")
    bars = u.continuous_bars("CL", dt.date(2022, 9, 30), 1700)
    df = pd.DataFrame([{"date": b.date, "open": b.open, "high": b.high, "low": b.low, "close": b.close, "volume": b.volume} for b in bars])
    df = df.set_index(pd.DatetimeIndex(pd.to_datetime(df["date"]))).drop(columns="date")
    return df, info.change_dates[0]


async def test_scenario_drives_detection_promotion_and_rollback(conn, tmp_path):
    t0 = time.monotonic()
    bars, change = sim_bars()
    assert change == CHANGE
    registry = ModelRegistry(conn, tmp_path / "models")
    phases: list[AgentPhase] = []
    cfg = AgentConfig(
        experiment_time_limit_s=60, wf_test_window=50, wf_splits=5, wf_min_train=120,
        default_spec={"family": "logistic", "train_window_days": 500, "features": list(LEAN)},
        playbook=PlaybookConfig(budget_per_cycle=2), initial_autonomy=AutonomyLevel.SUPERVISED,
    )
    agent = AgentLoop(conn, registry, SubprocessExecutor(max_parallel=2), tmp_path / "experiments", cfg, on_phase=phases.append)
    await agent.start()
    days = bars.index[bars.index >= pd.Timestamp(CHANGE - dt.timedelta(days=20))]

    # Bootstrap before the change: supervised, so the first champion waits for approval too.
    first = days[0]
    res = await agent.run_cycle(first.date(), bars.loc[:first])
    assert res.awaiting_approval is not None and res.experiments[0].status == "OK"
    assert agent.phase is AgentPhase.AWAITING_APPROVAL
    v1 = await agent.approve()
    assert await registry.champion_version() == v1

    # Observe daily in lockdown from before the change until detection (no experiments).
    await agent.set_autonomy(AutonomyLevel.LOCKDOWN)
    detected = None
    for ts in days[1:120]:
        res = await agent.run_cycle(ts.date(), bars.loc[:ts])
        assert res.experiments == ()
        if res.diagnosis is not None and res.diagnosis.kind is not DiagnosisKind.NONE and ts.date() >= CHANGE:
            perf = [f for f in res.drift_findings if f.stream.startswith("perf:")]
            if perf:
                detected = (ts.date(), res.diagnosis)
                break
    assert detected is not None, "the flip was never detected"
    assert CHANGE <= detected[0] <= CHANGE + dt.timedelta(days=170)
    false_before = [e for e in await agent.journal.query(entry_type="observation", until=(CHANGE - dt.timedelta(days=1)).isoformat(), outcome="alarm")]
    assert len(false_before) <= 2

    # Months later (a restart after an outage), supervised: real experiments in subprocesses.
    await agent.set_autonomy(AutonomyLevel.SUPERVISED)
    later = bars.index[bars.index >= pd.Timestamp(CHANGE + dt.timedelta(days=720))][0]
    res = await agent.run_cycle(later.date(), bars.loc[:later])
    assert res.hypotheses, res.notes
    assert all(e.status == "OK" for e in res.experiments), [e.error for e in res.experiments]
    assert res.awaiting_approval is not None, [e.gate for e in res.experiments]
    assert await registry.champion_version() == v1  # nothing trades before approval
    v2 = await agent.approve()
    assert v2 == res.awaiting_approval and await registry.champion_version() == v2

    # The new champion trades from the next signal; a forced rollback restores the old one.
    restored = await agent.rollback("operator drill", trading_date=later.date())
    assert restored == v1 and await registry.champion_version() == v1

    kinds = {e.entry_type for e in await agent.journal.query(limit=1000)}
    assert {"observation", "diagnosis", "hypothesis", "experiment", "decision", "rollback", "control"} <= kinds
    exps = await agent.journal.experiments()
    assert any(x.outcome == "promoted" and x.candidate_version == v2 for x in exps)
    assert all(x.duration_s and x.duration_s > 0 for x in exps)
    assert AgentPhase.EXPERIMENTING in phases and AgentPhase.AWAITING_APPROVAL in phases
    assert time.monotonic() - t0 < 120
