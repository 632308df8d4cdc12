"""The bootstrap fit with a held-out segment: the reference is out of sample and ends the history."""

from __future__ import annotations

from model_testdata import synthetic_bars

from hydra_engine.model.bootstrap import fit_with_holdout


def test_bootstrap_holdout_reference_is_out_of_sample_and_purged() -> None:
    bars = synthetic_bars(800, seed=3)
    model, m = fit_with_holdout(bars, {"family": "logistic"}, holdout_fraction=0.25)
    h = m["holdout"]
    assert h["n"] >= 150 and m["train_end"] < h["start"] and h["purge_days"] == 2
    assert model.train_end is not None and str(model.train_end)[:10] == m["train_end"]
    daily = m["agent_oos_daily"]
    assert len(daily["log_loss"]) == len(daily["hit"]) == len(daily["return"]) == h["n"]
    assert m["reference_end"] == h["end"]
    assert m["walk_forward"]["overall"]["log_loss"] == h["log_loss"]


def test_bootstrap_without_enough_history_fits_everything_and_gives_no_reference() -> None:
    bars = synthetic_bars(150, seed=4)
    _, m = fit_with_holdout(bars, {"family": "logistic"}, holdout_fraction=0.25)
    assert m["holdout"] is None and "agent_oos_daily" not in m
