"""The default universe's healing market (ZO, ``reversion_to_momentum``).

In-process checks with the agent's own parts (the planted relation pays its costs before the break,
the break is early in a default run, the stale champion inverts after it, a refitted model learns
the new relation, and the healing benchmark's short form puts the agent ahead of never retraining),
then one lock-step run of the real engine on the default universe (real exchange over loopback,
real SQLite store, real experiment subprocesses) with the agent autonomous: ZO is alarmed,
diagnosed, de-risked to flat while its champion is plainly broken, healed by a promotion whose
champion then trades better than a coin, while MWE, where nothing changes, stays within its
false-alarm budget and promotes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hydra_engine.agent.core import AgentConfig
from hydra_engine.agent.thresholds import FalseAlarmBudget
from hydra_engine.model.baseline import ModelSpec
from hydra_engine.model.walk_forward import walk_forward_evaluate
from hydra_engine.sim.calendar import business_days
from hydra_engine.sim.universe import DEFAULT_SYMBOLS, build_universe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import healing  # noqa: E402


def test_default_universe_breaks_zo_about_50_days_into_a_default_run() -> None:
    assert "ZO" in DEFAULT_SYMBOLS
    u = build_universe(seed=7)
    info = u.scenario("ZO")
    assert info.name == "reversion_to_momentum"
    assert (info.coefficient_before, info.coefficient_after) == (-0.35, 0.35)
    start = u.default_clock_start().date()
    (change,) = info.change_dates
    into_run = len(business_days(start, change)) - 1
    assert 40 <= into_run <= 60
    # replay --days 252 holds the change and ~200 trading days after it
    assert len(business_days(change, start + dt.timedelta(days=365))) > 180


@pytest.mark.parametrize("seed", [1, 7])
def test_bootstrap_pays_its_costs_before_the_break_and_inverts_after(seed: int) -> None:
    d = healing.market_data(seed, "reversion_to_momentum")
    spec = ModelSpec.from_dict(AgentConfig().default_spec)
    c = int(d.features.index.searchsorted(d.change))
    t0 = c - healing.LEAD_DAYS
    pre = slice(0, t0 - 1)
    wf = walk_forward_evaluate(spec, d.features.iloc[pre], d.labels.iloc[pre], d.returns.iloc[pre], d.cost_bps,
                               n_splits=5, test_window=50, min_train=250)
    assert wf.overall.sharpe > 0.5, "the planted relation must pay the cost estimate out of sample"
    arms = healing.run_static_arms(d, spec)
    assert arms["never"].metrics()["hit"] < 0.45, "the stale champion should invert after the flip"
    assert arms["newest"].metrics()["hit"] > 0.5, "a refitted model learns the new relation"
    assert d.change == pd.Timestamp(build_universe(seed=seed).scenario("ZO").change_dates[0])
    assert np.isfinite(d.cost_bps) and d.cost_bps > 5


@pytest.mark.timeout(300)
def test_the_agent_is_ahead_of_never_retraining_on_the_demo_market() -> None:
    """The healing benchmark's short form: the real agent against the stale champion, two seeds."""
    rows = healing.run([3, 7], ["reversion_to_momentum"], workers=2)
    for r in rows:
        a, b = r["metrics"]["hydra"], r["metrics"]["never"]
        assert a["log_loss"] < b["log_loss"] and a["sharpe"] > b["sharpe"], (r["seed"], a, b, r["events"])
        assert r["derisks"] and min(r["derisks"]) > 0, "cut to flat after the change, never before it"


# ----------------------------------------------------------------------------- the real engine

RUN_DAYS = 175
SEED = 7
NO_CHANGE = "MWE"
"""A catalogue market the default universe prices with the ``steady`` scenario (nothing changes)."""


async def _run(data_dir: Path) -> dict[str, Any]:
    from hydra_engine.config import load_settings
    from hydra_engine.engine import Engine
    from hydra_engine.model.features import tradable_returns

    settings = load_settings(None, {
        "markets": ["ZO", NO_CHANGE],
        "agent.initial_autonomy": "autonomous",
        # Lock-step plays the next day as soon as the engine is idle; waiting for the experiments
        # in the cycle keeps the run the same on a slow or a busy machine.
        "agent.experiment_wait_s": 300,
    })
    eng = Engine(settings, data_dir=data_dir, seed=SEED)
    await eng.start()
    try:
        await eng.run_days(RUN_DAYS)
        await eng.agent.wait_background(300)
        out: dict[str, Any] = {"markets": {}, "change": eng.exchange.universe.scenario("ZO").change_dates[0].isoformat(),
                               "no_change_scenario": eng.exchange.universe.scenario(NO_CHANGE).name,
                               "streams": {}}
        for m in ("ZO", NO_CHANGE):
            agent = eng.agent.for_market(m)
            entries = await agent.journal.query(limit=100_000)
            async with eng.store.conn.execute("SELECT trading_date, summary FROM cycles WHERE market = ? ORDER BY trading_date", (m,)) as cur:
                cycles = [json.loads(s) for _, s in await cur.fetchall() if s]
            bars = await eng.store.bars.load(m, "CONTFUT")
            ret = tradable_returns(bars)
            out["markets"][m] = {
                "entries": [{"date": e.trading_date, "type": e.entry_type, "outcome": e.outcome, "summary": e.summary, "payload": e.payload}
                            for e in entries],
                "experiments": [{"status": x.status, "outcome": x.outcome, "log_path": x.log_path, "key": x.hypothesis_key}
                                for x in await agent.journal.experiments(limit=1000)],
                "cycles": cycles,
                "returns": {str(k.date()): float(v) for k, v in ret.items() if np.isfinite(v)},
                "streams": len(agent.drift.features) + 3 if agent.drift is not None else None,
            }
        return out
    finally:
        await eng.stop()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return asyncio.run(_run(tmp_path_factory.mktemp("demo")))


def _of(run: dict[str, Any], market: str, kind: str, outcome: str | None = None) -> list[dict[str, Any]]:
    return [e for e in run["markets"][market]["entries"] if e["type"] == kind and (outcome is None or e["outcome"] == outcome)]


@pytest.mark.timeout(300)
def test_zo_goes_through_the_whole_cycle_and_the_healed_champion_trades_better_than_a_coin(demo_run: dict[str, Any]) -> None:
    change = demo_run["change"]
    alarms = [e["date"] for e in _of(demo_run, "ZO", "observation", "alarm")]
    after = [d for d in alarms if d >= change]
    assert after, "the break was never alarmed"
    first = after[0]
    assert len(business_days(dt.date.fromisoformat(change), dt.date.fromisoformat(first))) <= 30
    assert [e for e in _of(demo_run, "ZO", "diagnosis") if e["date"] >= first and e["outcome"] not in ("none", "data_quality")]
    promoted = _of(demo_run, "ZO", "decision", "promoted")
    assert promoted, [e["summary"] for e in _of(demo_run, "ZO", "experiment")]
    p = promoted[0]
    assert p["date"] > first and p["payload"]["hypothesis_key"].startswith("retrain_since_alarm")
    assert p["payload"]["gate"]["passed"]
    # the experiment ran in a real subprocess: its own log, written by the worker
    exp = next(x for x in demo_run["markets"]["ZO"]["experiments"] if x["outcome"] == "promoted")
    log = Path(exp["log_path"]).read_text()
    assert "worker.started" in log and "worker.finished" in log
    # the healed champion trades: its daily signal is right more often than not
    healed = p["payload"]["version"]
    rets = demo_run["markets"]["ZO"]["returns"]
    hits = [int((c["p_up"] > 0.5) == (rets[c["trading_date"]] > 0)) for c in demo_run["markets"]["ZO"]["cycles"]
            if c.get("champion") == healed and c.get("p_up") is not None and c["trading_date"] in rets]
    assert len(hits) >= 30 and np.mean(hits) > 0.5, (len(hits), np.mean(hits) if hits else None)


@pytest.mark.timeout(300)
def test_the_inverted_champion_is_cut_to_flat_before_a_candidate_passes_and_the_journal_says_why(demo_run: dict[str, Any]) -> None:
    cut = _of(demo_run, "ZO", "decision", "derisk")
    assert cut, "the inverted champion was never cut"
    first_cut = cut[0]
    promoted = _of(demo_run, "ZO", "decision", "promoted")[0]
    assert demo_run["change"] < first_cut["date"] < promoted["date"]
    assert "worse than a coin" in first_cut["summary"] and first_cut["payload"]["evidence"]["broken"]
    assert first_cut["payload"]["size_fraction"] == 0.0
    flat = [c for c in demo_run["markets"]["ZO"]["cycles"] if first_cut["date"] < c["trading_date"] < promoted["date"]]
    assert len(flat) >= 10
    assert all(c["target"] == 0 and c["agent_size_fraction"] == 0.0 for c in flat)
    held = [sum(q for s, q in (c.get("positions") or {}).items() if s.startswith("ZO")) for c in flat[1:]]
    assert held and all(q == 0 for q in held), "orders took the ZO position flat by the next session"
    lifted = _of(demo_run, "ZO", "decision", "derisk_lifted")
    assert lifted and lifted[0]["date"] == promoted["date"]


@pytest.mark.timeout(300)
def test_no_alarm_storm_and_no_experiment_spree_on_a_market_where_nothing_changes(demo_run: dict[str, Any]) -> None:
    assert demo_run["no_change_scenario"] == "steady"
    cycles = demo_run["markets"][NO_CHANGE]["cycles"]
    days = len(cycles)
    findings = sum(len(e["payload"].get("findings") or []) for e in _of(demo_run, NO_CHANGE, "observation", "alarm"))
    streams = demo_run["markets"][NO_CHANGE]["streams"]
    budget = FalseAlarmBudget.per_feature(AgentConfig().alarms_per_1000_days_per_stream, streams).system_alarms_per_1000_days
    expected = budget * days / 1000
    # Poisson: at this budget more than expected + 4 sd findings in a run happens about once in 10^4
    assert findings <= expected + 4 * np.sqrt(expected) + 1, (findings, expected, days)
    experiments = demo_run["markets"][NO_CHANGE]["experiments"]
    assert len(experiments) <= 2 and not _of(demo_run, NO_CHANGE, "decision", "promoted")
