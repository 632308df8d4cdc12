"""Playbook budget, cooldowns and no-repeat; diagnosis rules; rollback hysteresis."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from hydra_engine.agent.diagnose import DiagnosisKind, check_data_quality, diagnose
from hydra_engine.agent.drift import DriftFinding
from hydra_engine.agent.hypotheses import Playbook, PlaybookConfig
from hydra_engine.agent.rollback import RollbackConfig, RollbackMonitor
from hydra_engine.model.baseline import ModelSpec

D0 = dt.date(2024, 3, 1)


def f(stream: str, det: str = "cusum_mean_up") -> DriftFinding:
    return DriftFinding(stream, det, 9.0, 7.0, D0.isoformat())


def test_diagnosis_rules():
    assert diagnose([]).kind is DiagnosisKind.NONE
    assert diagnose([f("ret_5")]).kind is DiagnosisKind.FEATURE_DRIFT
    assert diagnose([f("ret_5")]).features == ("ret_5",)
    assert diagnose([f("ret_5", "cusum_var")]).kind is DiagnosisKind.REGIME_CHANGE
    assert diagnose([f("vol_20")]).kind is DiagnosisKind.REGIME_CHANGE
    perf = [f("perf:log_loss", "perf_log_loss")]
    assert diagnose(perf).kind is DiagnosisKind.CONCEPT_DRIFT
    assert diagnose(perf, overfit_gap=0.2).kind is DiagnosisKind.OVERFIT
    assert diagnose(perf, overfit_gap=0.01).kind is DiagnosisKind.CONCEPT_DRIFT


def test_data_quality_nan_stale_missing_frozen():
    idx = pd.bdate_range("2024-01-01", periods=30)
    df = pd.DataFrame({"a": np.arange(30.0), "b": np.ones(30)}, index=idx)
    rep = check_data_quality(df, idx[-1].date(), ["a", "b", "c"])
    assert not rep.ok and rep.missing_features == ("c",) and rep.frozen_features == ("b",)
    df.iloc[-1, 0] = np.nan
    rep = check_data_quality(df, (idx[-1] + pd.Timedelta(days=14)).date(), ["a"])
    assert rep.nan_features == ("a",) and rep.stale_days >= 9 and not rep.ok
    d = diagnose([f("ret_5")], rep)
    assert d.kind is DiagnosisKind.DATA_QUALITY
    assert not check_data_quality(None, D0, ["a"]).ok


def test_playbook_budget_cooldown_and_no_repeat_of_rejected():
    spec = ModelSpec("logistic", train_window_days=750)
    pb = Playbook(PlaybookConfig(budget_per_cycle=2, cooldown_days=10, rejected_cooldown_days=40))
    diag = diagnose([f("perf:log_loss", "perf_log_loss")])
    chosen, skipped = pb.propose(diag, spec, D0)
    assert len(chosen) == 2 and any("budget" in why for _, why in skipped)
    keys = [h.key for h in chosen]
    assert len(set(keys)) == 2
    for h in chosen:
        ModelSpec.from_dict(h.apply(spec.to_dict()))  # valid specs
    pb.record(keys[0], "rejected", D0)
    pb.record(keys[1], "error", D0)
    # Within the plain cooldown neither repeats; after it only the errored one may come back.
    again, skipped = pb.propose(diag, spec, D0 + dt.timedelta(days=5))
    assert not set(keys) & {h.key for h in again}
    later, _ = pb.propose(diag, spec, D0 + dt.timedelta(days=15))
    assert keys[1] in {h.key for h in later} or len(later) == 2
    assert keys[0] not in {h.key for h in later}
    assert "rejected" in pb.blocked(keys[0], D0 + dt.timedelta(days=15))
    assert pb.blocked(keys[0], D0 + dt.timedelta(days=41)) is None
    # History survives a round trip.
    assert Playbook(pb.config, pb.to_dict()).blocked(keys[0], D0 + dt.timedelta(days=15)) is not None


def test_playbook_drop_features_for_feature_drift_and_nothing_for_data_quality():
    spec = ModelSpec("logistic")
    pb = Playbook(PlaybookConfig(budget_per_cycle=5))
    chosen, _ = pb.propose(diagnose([f("ret_5")]), spec, D0)
    drop = [h for h in chosen if h.kind == "drop_features"]
    assert drop and "ret_5" not in drop[0].config_diff["features"]
    dq = diagnose([], check_data_quality(None, D0, ["a"]))
    assert pb.propose(dq, spec, D0) == ([], [])
    with pytest.raises(ValueError, match="budget_per_cycle"):
        PlaybookConfig(budget_per_cycle=-1)


def test_rollback_hysteresis_patience_and_cooldown():
    cfg = RollbackConfig(patience_days=5, window_days=10, min_days=5, enter_margin=0.02, exit_margin=0.0, cooldown_days=20)
    mon = RollbackMonitor(cfg)
    mon.start_watch("v2", "v1")
    day = D0
    verdict = None
    # Slightly worse (inside the band) for a long time: no rollback.
    for i in range(30):
        verdict = mon.update(f"a{i}", 0.70 + 0.01, 0.70)
        assert verdict is None
    assert mon.bad_streak == 0
    # Clearly worse: a rollback after the patience.
    days_to_verdict = None
    for i in range(30):
        verdict = mon.update(f"b{i}", 0.75, 0.70)
        if verdict:
            days_to_verdict = i + 1
            break
    assert verdict is not None and verdict.predecessor == "v1" and days_to_verdict >= cfg.patience_days
    streak = mon.bad_streak
    assert mon.update(f"b{i}", 0.9, 0.7) is None and mon.bad_streak == streak  # same date is ignored
    mon.note_rollback(day)
    assert not mon.watching and mon.in_cooldown(day + dt.timedelta(days=5)) and not mon.in_cooldown(day + dt.timedelta(days=21))
    clone = RollbackMonitor(cfg, mon.to_dict())
    assert clone.cooldown_until == mon.cooldown_until


def test_rollback_streak_resets_below_exit_margin():
    mon = RollbackMonitor(RollbackConfig(patience_days=5, window_days=3, min_days=1, enter_margin=0.02, exit_margin=0.0))
    mon.start_watch("v2", "v1")
    for i in range(4):
        assert mon.update(f"a{i}", 0.75, 0.70) is None
    assert mon.bad_streak == 4
    for i in range(3):
        mon.update(f"b{i}", 0.60, 0.70)
    assert mon.bad_streak == 0
    with pytest.raises(ValueError, match="exit_margin"):
        RollbackConfig(enter_margin=0.0, exit_margin=0.1)


def test_retrain_since_the_alarm_comes_first_and_is_lean_while_rows_are_few():
    from hydra_engine.agent.hypotheses import SinceAlarm, candidates_for

    spec = ModelSpec("logistic", train_window_days=750)
    cfg = PlaybookConfig()
    episode = SinceAlarm("2024-01-10", rows=60, windows=3)
    for diag in (diagnose([f("perf:log_loss", "perf_log_loss")]), diagnose([f("vol_20")]), diagnose([f("ret_5")])):
        first = candidates_for(diag, spec, cfg, episode)[0]
        assert first.kind == "retrain_since_alarm", diag.kind
        new = ModelSpec.from_dict(first.apply(spec.to_dict()))
        assert new.train_since == "2024-01-10" and new.train_window_days == 750  # the champion's recipe before the alarm
        assert set(new.features) == {"ret_1", "ret_5", "ret_10", "ret_20", "trend_20", "ma_cross"}  # 60 rows: 6 features
    # plenty of rows since the alarm: every feature
    full = candidates_for(diagnose([f("vol_20")]), spec, cfg, SinceAlarm("2024-01-10", rows=200, windows=10))[0]
    assert full.kind == "retrain_since_alarm" and "features" not in full.config_diff
    # the playbook remembers it by episode and evidence: a new window makes a new try possible
    pb = Playbook(cfg)
    chosen, _ = pb.propose(diagnose([f("vol_20")]), spec, D0, episode)
    assert chosen[0].kind == "retrain_since_alarm" and "2024-01-10" in chosen[0].key and "evidence_windows" in chosen[0].key
    pb.record(chosen[0].key, "rejected", D0)
    again, skipped = pb.propose(diagnose([f("vol_20")]), spec, D0, episode)
    assert all(h.kind != "retrain_since_alarm" for h in again) and any(h.kind == "retrain_since_alarm" for h, _ in skipped)
    later, _ = pb.propose(diagnose([f("vol_20")]), spec, D0, SinceAlarm("2024-01-10", rows=80, windows=4))
    assert later[0].kind == "retrain_since_alarm"
    # no episode, too few rows, or as many as the window: nothing new to fit on
    assert all(h.kind != "retrain_since_alarm" for h in candidates_for(diagnose([f("vol_20")]), spec, cfg))
    assert all(h.kind != "retrain_since_alarm" for h in candidates_for(diagnose([f("vol_20")]), spec, cfg, SinceAlarm("2024-01-10", 40, 2)))
    assert all(h.kind != "retrain_since_alarm" for h in candidates_for(diagnose([f("vol_20")]), spec, cfg, SinceAlarm("2023-01-10", 800, 40)))
    # overfitting is not a change: no retrain on the change's rows
    overfit = diagnose([f("perf:log_loss", "perf_log_loss")], overfit_gap=0.2)
    assert all(h.kind != "retrain_since_alarm" for h in candidates_for(overfit, spec, cfg, episode))
    with pytest.raises(ValueError, match="rows_per_feature"):
        PlaybookConfig(rows_per_feature=0)
