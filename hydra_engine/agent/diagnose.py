"""Diagnosis: turn detector alarms and data checks into one named cause, with the evidence.

Order of precedence (the first that applies wins; the evidence keeps everything seen):
1. data quality: missing, stale or non-finite inputs. Models are not changed on bad data.
2. regime change: volatility alarms (CUSUM on squared values) or shifts in the volatility and
   volume features.
3. feature drift: other features drifted (which ones is part of the diagnosis).
4. overfit: performance is down and the champion's in-sample loss is far below its realized loss.
5. concept drift: performance is down while the features are stable.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from hydra_engine.agent.drift import DriftFinding

#: Features that describe the volatility/volume regime rather than direction.
REGIME_FEATURES: frozenset[str] = frozenset({"vol_10", "vol_20", "vol_ratio", "volume_z", "range_z"})


class DiagnosisKind(StrEnum):
    NONE = "none"
    DATA_QUALITY = "data_quality"
    FEATURE_DRIFT = "feature_drift"
    CONCEPT_DRIFT = "concept_drift"
    REGIME_CHANGE = "regime_change"
    OVERFIT = "overfit"


@dataclass(frozen=True, slots=True)
class DataQualityReport:
    """Problems in today's inputs. ``ok`` when there are none."""

    as_of: str
    missing_features: tuple[str, ...] = ()
    nan_features: tuple[str, ...] = ()
    stale_days: int = 0
    """Trading days between the last feature row and the decision date (0 = fresh)."""
    frozen_features: tuple[str, ...] = ()
    """Features whose value has not changed for ``frozen_days`` rows (a stuck feed)."""
    n_rows: int = 0
    issues: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__} | {"ok": self.ok}  # type: ignore[attr-defined]


def check_data_quality(
    features: pd.DataFrame | None,
    as_of: dt.date,
    expected: Sequence[str],
    *,
    max_stale_days: int = 3,
    frozen_days: int = 10,
    min_rows: int = 1,
) -> DataQualityReport:
    """Check the feature frame the cycle will use: columns present, last row finite and recent."""
    day = as_of.isoformat()
    if features is None or not isinstance(features, pd.DataFrame) or len(features) < min_rows:
        n = 0 if features is None or not isinstance(features, pd.DataFrame) else len(features)
        return DataQualityReport(day, n_rows=n, issues=(f"feature history has {n} rows, need >= {min_rows}",))
    issues: list[str] = []
    missing = tuple(c for c in expected if c not in features.columns)
    if missing:
        issues.append(f"missing feature columns {list(missing)}")
    present = [c for c in expected if c in features.columns]
    last = features[present].iloc[-1]
    values = pd.to_numeric(last, errors="coerce").to_numpy(dtype=float)
    nan = tuple(c for c, v in zip(present, values) if not math.isfinite(v))
    if nan:
        issues.append(f"non-finite values on {features.index[-1]} in {list(nan)}")
    stale = 0
    try:
        last_day = pd.Timestamp(features.index[-1]).date()
        stale = int(np.busday_count(last_day, as_of)) if last_day < as_of else 0
    except (TypeError, ValueError):
        issues.append(f"feature index {features.index[-1]!r} is not a date")
    if stale > max_stale_days:
        issues.append(f"last feature row {features.index[-1]} is {stale} trading days before {day} (max {max_stale_days})")
    frozen: tuple[str, ...] = ()
    if len(features) >= frozen_days:
        tail = features[present].iloc[-frozen_days:]
        frozen = tuple(c for c in present if tail[c].nunique(dropna=False) == 1 and not c.startswith(("dow_", "month_")))
        if frozen:
            issues.append(f"features unchanged for {frozen_days} rows: {list(frozen)}")
    return DataQualityReport(day, missing, nan, stale, frozen, len(features), tuple(issues))


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The named cause of trouble and its evidence."""

    kind: DiagnosisKind
    summary: str
    features: tuple[str, ...] = ()
    """Features implicated (drifted features, or volatility features for a regime change)."""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "summary": self.summary, "features": list(self.features), "evidence": self.evidence}


def diagnose(
    findings: Iterable[DriftFinding],
    data_quality: DataQualityReport | None = None,
    *,
    overfit_gap: float | None = None,
    overfit_gap_threshold: float = 0.05,
    performance: Mapping[str, float] | None = None,
    regime_features: frozenset[str] = REGIME_FEATURES,
) -> Diagnosis:
    """One diagnosis from the recent findings (features and performance) and today's data check.

    ``overfit_gap``: champion's realized log loss minus its in-sample log loss (nats).
    """
    findings = list(findings)
    feat = [f for f in findings if not f.stream.startswith("perf:")]
    perf = [f for f in findings if f.stream.startswith("perf:")]
    evidence: dict[str, Any] = {
        "findings": [f.to_dict() for f in findings],
        "performance": dict(performance or {}),
        "overfit_gap": overfit_gap,
    }
    if data_quality is not None and not data_quality.ok:
        evidence["data_quality"] = data_quality.to_dict()
        return Diagnosis(DiagnosisKind.DATA_QUALITY, "; ".join(data_quality.issues), data_quality.nan_features + data_quality.missing_features, evidence)
    var_alarms = sorted({f.stream for f in feat if f.detector == "cusum_var"})
    regime_shift = sorted({f.stream for f in feat if f.stream in regime_features})
    regime = sorted(set(var_alarms) | set(regime_shift))
    drifted = sorted({f.stream for f in feat if f.stream not in regime})
    evidence["drifted_features"] = drifted
    evidence["regime_features"] = regime
    evidence["performance_alarms"] = sorted({f.stream for f in perf})
    if regime:
        return Diagnosis(DiagnosisKind.REGIME_CHANGE, f"volatility/volume regime changed ({', '.join(regime)})", tuple(regime + drifted), evidence)
    if drifted:
        return Diagnosis(DiagnosisKind.FEATURE_DRIFT, f"features drifted from the training reference: {', '.join(drifted)}", tuple(drifted), evidence)
    if perf:
        which = ", ".join(sorted({f.stream.removeprefix("perf:") for f in perf}))
        if overfit_gap is not None and overfit_gap > overfit_gap_threshold:
            return Diagnosis(
                DiagnosisKind.OVERFIT,
                f"performance down ({which}) with in- vs out-of-sample log-loss gap {overfit_gap:.3f} > {overfit_gap_threshold}",
                (),
                evidence,
            )
        return Diagnosis(DiagnosisKind.CONCEPT_DRIFT, f"performance down ({which}) while features are stable", (), evidence)
    return Diagnosis(DiagnosisKind.NONE, "no drift", (), evidence)
