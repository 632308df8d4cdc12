"""The playbook: which repairs to try for each diagnosis, within a budget and with memory.

A hypothesis is a concrete change to the champion's ``ModelSpec`` (a config diff). Its key is
the diff itself, so "retrain on the last 250 days" is the same hypothesis whenever it comes up.
The playbook proposes at most ``budget_per_cycle`` hypotheses per cycle, never one tried within
``cooldown_days`` and never one rejected within ``rejected_cooldown_days``.

When a drift episode is open, the first repair is "retrain since the alarm": fit only the rows
labelled since the episode's first alarm, so a model learns the new relation instead of averaging it
with the old one (a 250- or 120-row window straddling a change learns about nothing for months). Few
rows carry few parameters: under ``rows_per_feature`` rows per feature it keeps only the champion's
price-direction features (returns, trend). Its key names the episode and how many evidence windows
have completed since the alarm, so it is tried again as evidence accumulates, not on a fixed cooldown.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Mapping

from hydra_engine.agent.diagnose import Diagnosis, DiagnosisKind
from hydra_engine.model.baseline import FAMILY_DEFAULTS, MIN_TRAIN_ROWS, ModelError, ModelSpec

REPAIRS = ("retrain_since_alarm", "refit", "retrain_recent", "drop_features", "retune_regularization", "change_family",
           "recalibrate")

DIRECTION_PREFIXES = ("ret_", "trend_", "ma_")
"""Features that describe where the price went (returns, trend, moving-average cross): the ones a
retrain on few rows keeps, because the planted or real relations of a daily model live there."""


@dataclass(frozen=True, slots=True)
class SinceAlarm:
    """The open drift episode as the playbook sees it: where it started and the evidence since."""

    start: str
    """ISO date of the episode's first alarm."""
    rows: int
    """Labelled rows (decision dates with a known outcome) on or after ``start``."""
    windows: int
    """Complete walk-forward test windows those rows fill (the gate's evidence since the alarm)."""


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One candidate repair: apply ``config_diff`` to the champion's spec."""

    kind: str
    """One of REPAIRS."""
    config_diff: dict[str, Any]
    """Keys of ``ModelSpec.to_dict()`` with their new values."""
    diagnosis: str
    rationale: str
    identity: Mapping[str, Any] | None = None
    """What the playbook remembers this hypothesis by, when not its config diff (the since-alarm
    retrain: the episode and its evidence windows, since its window grows every day)."""

    @property
    def key(self) -> str:
        ident = self.config_diff if self.identity is None else self.identity
        return f"{self.kind}:{json.dumps(ident, sort_keys=True, default=str)}"

    def apply(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The candidate spec as a dict (validated by ``ModelSpec``)."""
        new = {**dict(spec), **self.config_diff}
        ModelSpec.from_dict(new)
        return new

    def to_dict(self) -> dict[str, Any]:
        out = {"key": self.key, "kind": self.kind, "config_diff": self.config_diff, "diagnosis": self.diagnosis, "rationale": self.rationale}
        if self.identity is not None:
            out["identity"] = dict(self.identity)
        return out


@dataclass(slots=True)
class PlaybookConfig:
    budget_per_cycle: int = 2
    cooldown_days: int = 20
    """A hypothesis tried (any outcome) is not tried again within this many calendar days."""
    rejected_cooldown_days: int = 60
    """A hypothesis the gate or operator rejected is not tried again within this many days."""
    recent_windows: tuple[int, ...] = (250, 120)
    """Training windows (rows) for 'retrain on a recent window', longest first."""
    rows_per_feature: int = 10
    """A retrain since the alarm on fewer rows than this per feature keeps only the direction features."""

    def __post_init__(self) -> None:
        if self.budget_per_cycle < 0:
            raise ValueError(f"playbook.budget_per_cycle must be >= 0, got {self.budget_per_cycle}")
        if self.cooldown_days < 0 or self.rejected_cooldown_days < 0:
            raise ValueError("playbook cooldowns must be >= 0 days")
        if any(w < MIN_TRAIN_ROWS for w in self.recent_windows):
            raise ValueError(f"playbook.recent_windows must each be >= {MIN_TRAIN_ROWS}, got {self.recent_windows}")
        if self.rows_per_feature < 1:
            raise ValueError(f"playbook.rows_per_feature must be >= 1, got {self.rows_per_feature}")


def _since_alarm(spec: ModelSpec, diag: str, since: SinceAlarm | None, rows_per_feature: int) -> list[Hypothesis]:
    """Retrain on the rows since the episode's first alarm (lean when they are few).

    The candidate's spec keeps the champion's window and adds ``train_since``: walk-forward folds
    trained before the alarm are the champion's recipe, folds after it forget the rows before it
    (``ModelSpec.rows_to_fit``), which is what the deployed candidate does."""
    if since is None or since.rows < MIN_TRAIN_ROWS or since.rows >= spec.train_window_days:
        return []
    diff: dict[str, Any] = {"train_since": since.start}
    features = list(spec.features)
    if since.rows < rows_per_feature * len(features):
        lean = [f for f in features if f.startswith(DIRECTION_PREFIXES)]
        if lean and len(lean) < len(features):
            diff["features"] = lean
            features = lean
    if spec.train_since == since.start and "features" not in diff:
        return []  # the champion already forgets the rows before this alarm: a refit is the same
    what = f"its {len(features)} direction features" if "features" in diff else f"all {len(features)} features"
    return [Hypothesis("retrain_since_alarm", diff, diag,
                       f"fit only the {since.rows} labelled days since the first alarm on {since.start} (the new relation), "
                       f"on {what}", identity={"since": since.start, "evidence_windows": since.windows})]


def _retrain(spec: ModelSpec, diag: str, windows: tuple[int, ...]) -> list[Hypothesis]:
    out = [
        Hypothesis("retrain_recent", {"train_window_days": w}, diag, f"fit on the last {w} days only, so the new regime dominates")
        for w in windows
        if w < spec.train_window_days
    ]
    return out + [Hypothesis("refit", {}, diag, "refit the champion's spec on the latest data")]


def _drop(spec: ModelSpec, diag: str, drifted: tuple[str, ...]) -> list[Hypothesis]:
    keep = tuple(f for f in spec.features if f not in drifted)
    if not drifted or len(keep) == len(spec.features) or not keep:
        return []
    return [Hypothesis("drop_features", {"features": list(keep)}, diag, f"drop drifted features {sorted(set(drifted) & set(spec.features))}")]


def _retune(spec: ModelSpec, diag: str, stronger: bool) -> list[Hypothesis]:
    hp = spec.resolved_hyperparams()
    out = []
    if spec.family == "logistic":
        factors = (0.3,) if stronger else (0.3, 3.0)
        for f in factors:
            c = round(float(hp["C"]) * f, 6)
            out.append(Hypothesis("retune_regularization", {"hyperparams": {**spec.hyperparams, "C": c}}, diag, f"regularization C {hp['C']} -> {c}"))
    elif spec.family == "hist_gb":
        new = {**spec.hyperparams, "l2_regularization": float(hp["l2_regularization"]) * 3.0, "min_samples_leaf": int(hp["min_samples_leaf"]) * 2}
        out.append(Hypothesis("retune_regularization", {"hyperparams": new}, diag, "stronger L2 and larger leaves"))
    else:
        new = {**spec.hyperparams, "max_depth": max(2, int(hp["max_depth"]) - 1), "min_samples_leaf": int(hp["min_samples_leaf"]) * 2}
        out.append(Hypothesis("retune_regularization", {"hyperparams": new}, diag, "shallower trees, larger leaves"))
    return out


def _family(spec: ModelSpec, diag: str) -> list[Hypothesis]:
    target = "hist_gb" if spec.family == "logistic" else "logistic"
    assert target in FAMILY_DEFAULTS
    return [Hypothesis("change_family", {"family": target, "hyperparams": {}}, diag, f"family {spec.family} -> {target}")]


def _recalibrate(spec: ModelSpec, diag: str) -> list[Hypothesis]:
    options = [c for c in ("sigmoid", "isotonic") if c != spec.calibrate]
    return [Hypothesis("recalibrate", {"calibrate": options[0]}, diag, f"recalibrate probabilities ({options[0]})")]


def candidates_for(diagnosis: Diagnosis, spec: ModelSpec, config: PlaybookConfig, since: SinceAlarm | None = None) -> list[Hypothesis]:
    """All playbook entries for a diagnosis, most promising first (before budget and cooldowns).

    ``since``: the open drift episode; a change (drift of any kind) is first met by a retrain on
    the rows since its first alarm."""
    d = diagnosis.kind.value
    w = config.recent_windows
    k = diagnosis.kind
    fresh = _since_alarm(spec, d, since, config.rows_per_feature)
    if k is DiagnosisKind.FEATURE_DRIFT:
        out = fresh + _drop(spec, d, diagnosis.features) + _retrain(spec, d, w) + _recalibrate(spec, d)
    elif k is DiagnosisKind.CONCEPT_DRIFT:
        out = fresh + _retrain(spec, d, w) + _retune(spec, d, stronger=False) + _family(spec, d) + _recalibrate(spec, d)
    elif k is DiagnosisKind.REGIME_CHANGE:
        out = fresh + _retrain(spec, d, w) + _recalibrate(spec, d) + _family(spec, d)
    elif k is DiagnosisKind.OVERFIT:
        out = _retune(spec, d, stronger=True) + _drop(spec, d, diagnosis.features) + ([] if spec.family == "logistic" else _family(spec, d))
    else:  # NONE, DATA_QUALITY: nothing to repair in the model
        out = []
    valid = []
    for h in out:
        try:
            h.apply(spec.to_dict())
        except (ModelError, ValueError):
            continue
        valid.append(h)
    return valid


class Playbook:
    """Chooses this cycle's hypotheses and remembers what was tried and how it went."""

    def __init__(self, config: PlaybookConfig | None = None, history: Mapping[str, Any] | None = None) -> None:
        self.config = config or PlaybookConfig()
        # key -> {"last_tried": iso date, "outcome": str}
        self.history: dict[str, dict[str, str]] = {k: dict(v) for k, v in (history or {}).items()}

    def blocked(self, key: str, today: dt.date) -> str | None:
        """Why ``key`` may not run today, or None."""
        h = self.history.get(key)
        if h is None:
            return None
        age = (today - dt.date.fromisoformat(h["last_tried"])).days
        if h.get("outcome") == "rejected" and age < self.config.rejected_cooldown_days:
            return f"rejected {age} days ago (cooldown {self.config.rejected_cooldown_days} days)"
        if age < self.config.cooldown_days:
            return f"tried {age} days ago (cooldown {self.config.cooldown_days} days)"
        return None

    def propose(self, diagnosis: Diagnosis, spec: ModelSpec, today: dt.date,
                since: SinceAlarm | None = None) -> tuple[list[Hypothesis], list[tuple[Hypothesis, str]]]:
        """(chosen, skipped-with-reason). At most ``budget_per_cycle`` chosen."""
        chosen: list[Hypothesis] = []
        skipped: list[tuple[Hypothesis, str]] = []
        for h in candidates_for(diagnosis, spec, self.config, since):
            why = self.blocked(h.key, today)
            if why is None and len(chosen) >= self.config.budget_per_cycle:
                why = f"over the budget of {self.config.budget_per_cycle} per cycle"
            if why is None:
                chosen.append(h)
            else:
                skipped.append((h, why))
        return chosen, skipped

    def record(self, key: str, outcome: str, today: dt.date) -> None:
        """Remember a try: outcome 'accepted', 'rejected', 'error', 'timeout' or 'pending'."""
        self.history[key] = {"last_tried": today.isoformat(), "outcome": outcome}

    def to_dict(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.history.items()}
