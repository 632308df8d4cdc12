"""The gate: DM-HLN against a hand computation, deflated Sharpe, windowed majority, decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hydra_engine.agent.promotion import (
    GateConfig,
    deflated_sharpe_ratio,
    diebold_mariano_hln,
    evaluate_gate,
    expected_max_sharpe,
    recency_weights,
    weighted_win_fraction,
)


def test_dm_hln_matches_hand_computation():
    cand = np.array([0.60, 0.55, 0.70, 0.62, 0.58, 0.66, 0.59, 0.61])
    champ = np.array([0.65, 0.60, 0.69, 0.70, 0.61, 0.70, 0.60, 0.66])
    d = champ - cand
    n = d.size
    dbar = d.mean()
    gamma0 = ((d - dbar) ** 2).sum() / n
    dm = dbar / math.sqrt(gamma0 / n)
    hln = dm * math.sqrt((n + 1 - 2 + 0) / n)
    res = diebold_mariano_hln(cand, champ, horizon=1)
    assert res.statistic == pytest.approx(hln, rel=1e-12)
    assert res.p_value == pytest.approx(stats.t.sf(hln, n - 1), rel=1e-12)
    assert res.mean_diff == pytest.approx(dbar)
    # horizon 2 adds the lag-1 autocovariance and the HLN factor for h = 2
    g1 = ((d[1:] - dbar) * (d[:-1] - dbar)).sum() / n
    dm2 = dbar / math.sqrt((gamma0 + 2 * g1) / n) if gamma0 + 2 * g1 > 0 else dbar / math.sqrt(gamma0 / n)
    res2 = diebold_mariano_hln(cand, champ, horizon=2)
    assert res2.statistic == pytest.approx(dm2 * math.sqrt((n + 1 - 4 + 2 / n) / n), rel=1e-12)


def test_dm_one_sided_and_bad_input():
    rng = np.random.default_rng(0)
    base = rng.random(300)
    better = base - 0.05 + 0.01 * rng.standard_normal(300)
    assert diebold_mariano_hln(better, base).p_value < 0.001
    assert diebold_mariano_hln(base, better).p_value > 0.999
    assert diebold_mariano_hln(base, base).p_value == 1.0
    with pytest.raises(ValueError, match="same length"):
        diebold_mariano_hln(base[:10], base[:11])
    with pytest.raises(ValueError, match=">= 3"):
        diebold_mariano_hln([1.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        diebold_mariano_hln([1.0, math.nan, 1.0], [1.0, 1.0, 1.0])


def test_deflated_sharpe_is_monotone_in_trials():
    rng = np.random.default_rng(1)
    r = 0.001 + 0.01 * rng.standard_normal(500)
    values = [deflated_sharpe_ratio(r, n).dsr for n in (1, 2, 5, 10, 50, 200)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert expected_max_sharpe(1, 0.01) == 0.0
    assert expected_max_sharpe(10, 0.01) < expected_max_sharpe(100, 0.01)
    one = deflated_sharpe_ratio(r, 1)
    # With one trial the DSR is the probabilistic Sharpe ratio against 0.
    sr = r.mean() / r.std(ddof=1)
    z = sr * math.sqrt(r.size - 1) / math.sqrt(1 - one.skew * sr + (one.kurtosis - 1) / 4 * sr * sr)
    assert one.dsr == pytest.approx(stats.norm.cdf(z), rel=1e-9)
    with pytest.raises(ValueError, match=">= 10 returns"):
        deflated_sharpe_ratio([0.1] * 5, 1)


def test_recency_weighted_majority():
    w = recency_weights(4, 1.0)
    assert w.sum() == pytest.approx(1.0) and list(w) == sorted(w)
    # Winning only the two most recent of four windows is a weighted majority, not a plain one.
    assert weighted_win_fraction([1, 1, 0, 0], [0, 0, 1, 1], 1.0) > 0.5
    assert weighted_win_fraction([0, 0, 1, 1], [1, 1, 0, 0], 1.0) < 0.5
    with pytest.raises(ValueError):
        recency_weights(0, 1.0)


def test_gate_decisions():
    rng = np.random.default_rng(2)
    champ = 0.69 + 0.05 * rng.standard_normal(250)
    good = champ - 0.03 + 0.01 * rng.standard_normal(250)
    rets = 0.003 + 0.01 * rng.standard_normal(250)
    ok = evaluate_gate([0.66] * 5, [0.69] * 5, good, champ, rets, n_trials=2)
    assert ok.passed and ok.reasons == () and ok.windows_won == 5
    same = evaluate_gate([0.69] * 5, [0.69] * 5, champ, champ, rets, n_trials=2)
    assert not same.passed and any("DM-HLN" in r for r in same.reasons) and any("window" in r for r in same.reasons)
    many = evaluate_gate([0.66] * 5, [0.69] * 5, good, champ, 0.0006 + 0.01 * rng.standard_normal(250), n_trials=500)
    assert not many.passed and any("deflated Sharpe" in r for r in many.reasons)
    short = evaluate_gate([0.66] * 2, [0.69] * 2, good[:30], champ[:30], rets[:30], n_trials=1)
    assert any("out-of-sample days" in r for r in short.reasons)
    with pytest.raises(ValueError, match="dm_alpha"):
        GateConfig(dm_alpha=0.7)


@pytest.fixture(scope="module")
def gate_inputs(tmp_path_factory):
    """Real features, labels and tradable returns, and a deployed champion saved to disk."""
    from hydra_engine.model.baseline import BaselineModel, ModelSpec
    from hydra_engine.model.features import (
        build_features,
        make_labels,
        tradable_returns,
    )

    from .conftest import synthetic_bars

    bars = synthetic_bars(520, seed=4)
    inputs = {"features": build_features(bars), "labels": make_labels(bars), "returns": tradable_returns(bars)}
    champ = BaselineModel(ModelSpec("logistic", features=("ret_5", "vol_20", "trend_20"), train_window_days=200))
    champ.fit(inputs["features"].iloc[:250], inputs["labels"])
    return inputs, str(champ.save(tmp_path_factory.mktemp("champ") / "model"))


def _run(inputs, work, cost_bps, champion):
    from hydra_engine.agent.experiment_worker import evaluate_candidate

    params = {"candidate_spec": {"family": "logistic", "train_window_days": 200, "features": ["ret_1", "ret_5", "vol_20"]},
              "n_splits": 3, "test_window": 40, "min_train": 100, "cost_bps": cost_bps, "save_model": False, "full_history": False} | champion
    return evaluate_candidate(params, inputs, work)


@pytest.mark.parametrize("which", ["model_dir", "spec"])
def test_champion_and_candidate_pay_the_same_cost(gate_inputs, tmp_path, which):
    """Both sides of the gate are net of the same cost per unit of position change (the deployed
    champion used to be scored gross)."""
    from hydra_engine.agent.promotion import evaluate_result
    from hydra_engine.model.baseline import BaselineModel
    from hydra_engine.model.walk_forward import positions_from_proba

    inputs, champ_dir = gate_inputs
    champion = ({"champion_model_dir": champ_dir} if which == "model_dir" else
                {"champion_spec": {"family": "logistic", "train_window_days": 200, "features": ["ret_5", "vol_20", "trend_20"]}})
    free, costly = _run(inputs, tmp_path, 0.0, champion), _run(inputs, tmp_path, 50.0, champion)
    dates = [np.datetime64(d) for d in free["daily"]["dates"]]
    assert free["daily"]["dates"] == costly["daily"]["dates"] and len(dates) == 120
    for side in ("candidate", "champion"):
        paid = np.asarray(free["daily"][f"{side}_return"]) - np.asarray(costly["daily"][f"{side}_return"])
        assert paid.sum() > 0, f"{side} pays no cost"
        # what it paid is exactly 50 bps per unit of position change, from flat before the first day
        assert np.all(np.isclose(paid, 0.0) | np.isclose(paid, 50e-4) | np.isclose(paid, 100e-4)), side
    for side in ("candidate", "champion"):
        assert costly[side]["basis"] == {"returns": "tradable_open_to_open_lag1", "net_of_cost_bps": 50.0}
    if which == "model_dir":
        p = BaselineModel.load(champ_dir).predict_proba(inputs["features"].loc[dates])
        pos = positions_from_proba(p)
        ret = inputs["returns"].loc[dates].to_numpy()
        changes = np.abs(np.diff(np.concatenate(([0.0], pos))))
        np.testing.assert_allclose(costly["daily"]["champion_return"], pos * ret - changes * 50e-4)
    ev = evaluate_result("e1", costly, 1, None, GateConfig())
    assert ev.error is None and ev.gate is not None
    br = np.asarray(costly["daily"]["champion_return"])
    assert ev.champion_sharpe_daily == pytest.approx(br.mean() / br.std(ddof=1))


def test_gate_refuses_champion_and_candidate_on_different_bases(gate_inputs, tmp_path):
    from hydra_engine.agent.promotion import evaluate_result

    inputs, champ_dir = gate_inputs
    res = _run(inputs, tmp_path, 50.0, {"champion_model_dir": champ_dir})
    gross_champion = res | {"champion": res["champion"] | {"basis": {"returns": "tradable_open_to_open_lag1", "net_of_cost_bps": 0.0}}}
    ev = evaluate_result("e2", gross_champion, 1, None, GateConfig())
    assert ev.gate is None and not ev.passed and "different bases" in (ev.error or "")
    unlabelled = res | {"champion": {k: v for k, v in res["champion"].items() if k != "basis"}}
    assert "different bases" in (evaluate_result("e3", unlabelled, 1, None, GateConfig()).error or "")


def test_an_episode_spends_at_most_its_dm_level_over_every_look_and_candidate():
    from hydra_engine.agent.promotion import episode_alpha

    total = sum(episode_alpha(0.05, look, 2) * 2 for look in range(1, 60))
    assert total <= 0.05 and total == pytest.approx(0.05, rel=1e-6)
    assert episode_alpha(0.05, 1, 2) == pytest.approx(0.0125)
    assert episode_alpha(0.05, 2, 1) == pytest.approx(0.0125)
    with pytest.raises(ValueError):
        episode_alpha(0.05, 0, 2)


def test_evidence_since_the_alarm_compares_after_it_and_deflates_on_everything():
    from hydra_engine.agent.experiment_worker import _evidence_since

    dates = [f"2024-01-{d:02d}" for d in range(1, 31)]
    daily = {"dates": dates, "window": [i // 10 for i in range(30)], "candidate_log_loss": list(range(30))}
    kept, windows = _evidence_since(daily, "2024-01-11")
    assert windows == [1, 2] and kept["dates"][0] == "2024-01-11" and kept["window"][0] == 0
    kept, windows = _evidence_since(daily, "2024-01-12")  # a window the alarm falls inside is not fresh
    assert windows == [2] and kept["dates"][0] == "2024-01-21"
