"""One agent per market: model keys and groups, the adoption of a single-champion store, operator
controls that pick the right market, and the plain-break test that de-risks an inverted champion."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hydra_engine.agent.derisk import COIN_LOG_LOSS, break_test
from hydra_engine.agent.experiments import SubprocessExecutor
from hydra_engine.agent.loop import AgentConfig, AgentLoop, AutonomyLevel
from hydra_engine.agent.per_market import MarketAgents, ModelKeys, adopt_unassigned
from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.bootstrap import fit_with_holdout
from hydra_engine.model.features import build_features, make_labels
from hydra_engine.model.registry import ModelRegistry

from .conftest import day, synthetic_bars

LEAN = ["ret_1", "ret_5", "ret_10", "vol_20"]


def fit(bars: pd.DataFrame) -> BaselineModel:
    x, y = build_features(bars), make_labels(bars)
    idx = x.index.intersection(y.index)
    return BaselineModel(ModelSpec("logistic", features=tuple(LEAN), train_window_days=250)).fit(x.loc[idx], y.loc[idx])


def config(**kw) -> AgentConfig:
    return AgentConfig(experiment_time_limit_s=60, wf_test_window=30, wf_splits=3, wf_min_train=100,
                       default_spec={"family": "logistic", "train_window_days": 250, "features": LEAN}, **kw)


# ------------------------------------------------------------------------------------------ keys


def test_model_keys_give_each_market_its_own_champion_or_its_groups() -> None:
    alone = ModelKeys.from_groups(["CL", "ZO"])
    assert alone.key_of == {"CL": "CL", "ZO": "ZO"} and alone.keys == ["CL", "ZO"]
    grouped = ModelKeys.from_groups(["CL", "ZO", "ZR"], {"ZO": "grains", "ZR": "grains"})
    assert grouped.key_of == {"CL": "CL", "ZO": "grains", "ZR": "grains"}
    assert grouped.lead_of == {"CL": "CL", "grains": "ZO"}  # the first of the group in configured order leads it
    with pytest.raises(ValueError, match="also a market traded alone"):
        ModelKeys.from_groups(["CL", "ZO"], {"ZO": "CL"})
    with pytest.raises(KeyError, match="not traded here"):
        grouped.key("HO")


# ------------------------------------------------------------------------------------------ break test


def _outcomes(p_up: np.ndarray, labels: np.ndarray, start: str = "2020-01-01") -> pd.DataFrame:
    pc = np.clip(p_up, 1e-6, 1 - 1e-6)
    ll = -(labels * np.log(pc) + (1 - labels) * np.log(1 - pc))
    return pd.DataFrame({"p_up": p_up, "label": labels, "log_loss": ll}, index=pd.bdate_range(start, periods=len(p_up)))


def test_break_test_needs_fresh_days_and_separates_an_inverted_model_from_a_weak_one() -> None:
    rng = np.random.default_rng(3)
    n = 80
    y = rng.integers(0, 2, n)
    # inverted: confident and mostly wrong
    inverted = np.where(rng.random(n) < 0.7, 1 - y, y) * 0.3 + 0.35
    v = break_test(_outcomes(inverted, y), "2020-01-10", alpha=0.01, min_days=20)
    assert v is not None and v.broken and v.log_loss > COIN_LOG_LOSS and v.hit_rate < 0.5
    assert v.n_days == int((pd.bdate_range("2020-01-01", periods=n) > pd.Timestamp("2020-01-10")).sum())
    assert "hit rate" in v.summary or "log loss" in v.summary
    # weak but sound: near 0.5 and right a little more often than not
    weak = 0.5 + 0.02 * np.where(rng.random(n) < 0.55, 2 * y - 1, 1 - 2 * y)
    assert not break_test(_outcomes(weak, y), "2020-01-10").broken
    # too few days after the first alarm: no verdict yet
    assert break_test(_outcomes(inverted, y), "2020-04-10", min_days=20) is None


def test_break_test_false_cuts_on_sound_models_stay_within_alpha() -> None:
    rng = np.random.default_rng(11)
    cuts, trials = 0, 400
    for _ in range(trials):
        y = rng.integers(0, 2, 40)
        p = np.full(40, 0.5) + rng.normal(0, 0.01, 40)  # a coin with jitter: H0 holds exactly at the boundary
        cuts += break_test(_outcomes(p, y), "2019-12-31", alpha=0.01, min_days=20).broken
    assert cuts / trials <= 0.03, f"{cuts} cuts in {trials} sound models at alpha 0.01"


# ------------------------------------------------------------------------------------------ adoption


async def test_a_single_champion_store_is_adopted_by_the_first_market(conn, tmp_path) -> None:
    bars = synthetic_bars(400, seed=5)
    old = ModelRegistry(conn, tmp_path / "models")  # the old schema's single champion (market '')
    v1 = await old.register(fit(bars.iloc[:300]), {"in_sample_log_loss": 0.68}, status="champion")
    single = AgentLoop(conn, old, SubprocessExecutor(1), tmp_path / "exp", config(initial_autonomy=AutonomyLevel.AUTONOMOUS))
    await single.start()
    await single.run_cycle(day(bars.index[320]), bars.iloc[:321])
    assert await single.journal.query(entry_type="observation")
    agents = MarketAgents(conn, old, SubprocessExecutor(1), tmp_path / "exp", config(), ModelKeys.from_groups(["CL", "ZO"]))
    await agents.start()
    cl, zo = agents.for_market("CL"), agents.for_market("ZO")
    assert await cl.registry.champion_version() == v1  # moved, not refitted
    assert await zo.registry.champion_version() is None  # the other market gets a champion of its own
    assert await old.champion_version() is None
    assert cl.autonomy is AutonomyLevel.AUTONOMOUS  # the persisted state came along
    assert cl.state.champion_version == v1
    assert {e.market for e in await agents.journal.query()} == {"CL"}
    async with conn.execute("SELECT key FROM agent_state ORDER BY key") as cur:
        keys = [r[0] for r in await cur.fetchall()]
    assert "agent" not in keys and "agent:CL" in keys
    assert not any((await adopt_unassigned(conn, None, "CL")).values())  # a second start moves nothing


# ------------------------------------------------------------------------------------------ controls


async def test_operator_controls_pick_the_market_and_refuse_to_guess(conn, tmp_path) -> None:
    bars = synthetic_bars(400, seed=6)
    base = ModelRegistry(conn, tmp_path / "models")
    agents = MarketAgents(conn, base, SubprocessExecutor(1), tmp_path / "exp", config(), ModelKeys.from_groups(["CL", "ZO"]))
    await agents.start()
    cl, zo = agents.for_market("CL"), agents.for_market("ZO")
    v_cl = await cl.registry.register(fit(bars.iloc[:250]), {}, status="champion")
    v_zo = await zo.registry.register(fit(bars.iloc[50:300]), {}, status="champion")
    v_zo2 = await zo.registry.register(fit(bars.iloc[100:350]), {}, parent=v_zo)
    with pytest.raises(ValueError, match="name the market"):
        await agents.rollback("why not")
    # ZO's new champion is rolled back by name; CL's champion is untouched
    await zo.registry.promote(v_zo2, reason="test")
    key, restored, previous = await agents.rollback("trailing", market="ZO")
    assert (key, restored, previous) == ("ZO", v_zo, v_zo2)
    assert await cl.registry.champion_version() == v_cl
    assert agents.pending_for() is None
    with pytest.raises(Exception, match="no candidate is awaiting approval"):
        await agents.approve("CL")
    rollbacks = await agents.journal.query(entry_type="rollback")
    assert [(e.market, e.outcome) for e in rollbacks] == [("ZO", "manual")]


# ------------------------------------------------------------------------------------------ de-risk


async def test_an_inverted_champion_is_cut_to_flat_and_the_journal_says_why(conn, tmp_path) -> None:
    """The relation flips; experiments are paused, so no candidate can pass: the agent de-risks the
    market to flat once the champion's days since the first alarm are plainly worse than a coin."""
    bars = synthetic_bars(700, seed=21, coef=0.4, flip_at=400)
    base = ModelRegistry(conn, tmp_path / "models")
    agents = MarketAgents(conn, base, SubprocessExecutor(1), tmp_path / "exp", config(), ModelKeys.from_groups(["ZO"]))
    await agents.start()
    zo = agents.for_market("ZO")
    # registered as the engine bootstraps: with a held-out segment as the monitors' reference
    model, metrics = fit_with_holdout(bars.iloc[:392], config().default_spec)
    await zo.registry.register(model, metrics, status="champion")
    await zo.pause()
    fractions = []
    for i in range(392, 560):
        await agents.run_cycle("ZO", day(bars.index[i]), bars.iloc[: i + 1])
        fractions.append(agents.size_fraction("ZO"))
        if fractions[-1] < 1.0:
            break
    assert fractions[-1] == 0.0, "the inverted champion was never de-risked"
    cut = await zo.journal.query(entry_type="decision", outcome="derisk")
    assert len(cut) == 1 and "worse than a coin" in cut[0].summary
    evidence = cut[0].payload["evidence"]
    assert evidence["broken"] and evidence["n_days"] >= 20
    assert cut[0].trading_date > bars.index[400].date().isoformat()  # after the flip, not before it
    assert zo.status()["derisk"]["size_fraction"] == 0.0
    # the champion changes (here: a manual promotion of a refit): the cut is lifted and journalled
    refit = await zo.registry.register(fit(bars.iloc[300: i + 1]), {}, parent=zo.state.champion_version)
    await zo.registry.promote(refit, reason="test refit")
    i += 1
    await agents.run_cycle("ZO", day(bars.index[i]), bars.iloc[: i + 1])
    assert agents.size_fraction("ZO") == 1.0
    lifted = await zo.journal.query(entry_type="decision", outcome="derisk_lifted")
    assert len(lifted) == 1 and refit in lifted[0].summary
    assert json.dumps(zo.status(), default=str)  # the status stays JSON-able for the snapshot
