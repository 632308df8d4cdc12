"""The plain-break test behind de-risking: is the champion now clearly worse than a coin?

After the detectors open an episode (the first alarm), the champion's own realized outcomes on the
days *after* that alarm are fresh evidence: the alarm is a stopping time decided on the days before
it. If on those days the champion's log loss is above a coin's (ln 2) or its hit rate below one
half, each at the stated one-sided significance (``alpha`` split between the two tests), the model
is not merely drifting but inverted, and trading it on is paying to be wrong. The agent then cuts the
market's size (to flat by default) until a candidate passes the gate or the champion changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hydra_engine.agent.diagnose import Diagnosis, DiagnosisKind

__all__ = ["COIN_LOG_LOSS", "BreakVerdict", "break_test", "broken_diagnosis"]

COIN_LOG_LOSS = math.log(2.0)
"""Log loss of always answering 0.5: the score a model that knows nothing gets."""


@dataclass(frozen=True, slots=True)
class BreakVerdict:
    """The evidence for (or against) a plain break since ``since`` (exclusive)."""

    since: str
    n_days: int
    log_loss: float
    hit_rate: float
    p_log_loss: float
    """One-sided p-value of mean log loss <= ln 2 (t-test on the daily losses)."""
    p_hit_rate: float
    """One-sided exact binomial p-value of hit rate >= 0.5."""
    alpha: float
    broken: bool

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]

    @property
    def summary(self) -> str:
        worse = []
        if self.p_log_loss <= self.alpha / 2:
            worse.append(f"log loss {self.log_loss:.4f} > coin {COIN_LOG_LOSS:.4f} (p={self.p_log_loss:.4f})")
        if self.p_hit_rate <= self.alpha / 2:
            worse.append(f"hit rate {self.hit_rate:.1%} < 50% (p={self.p_hit_rate:.4f})")
        what = " and ".join(worse) or f"not worse than a coin at {self.alpha:g}"
        return f"{self.n_days} days since {self.since}: {what}"


def break_test(outcomes: pd.DataFrame, since: str, *, alpha: float = 0.01, min_days: int = 20) -> BreakVerdict | None:
    """Test the champion's outcomes after ``since``; None with fewer than ``min_days`` of them.

    ``outcomes``: the agent's realized outcomes (index: decision dates; columns ``log_loss`` and
    ``label``/``p_up`` or ``hit``). Both one-sided tests at ``alpha / 2`` (Bonferroni), so the
    chance of cutting a sound model on a no-change stretch is at most ``alpha`` per episode.
    """
    if len(outcomes) < min_days:
        return None
    after = outcomes[pd.DatetimeIndex(outcomes.index) > pd.Timestamp(since)]
    n = len(after)
    if n < min_days:
        return None
    ll = after["log_loss"].to_numpy(dtype=float)
    if "hit" in after:
        hits = after["hit"].to_numpy(dtype=float)
    else:
        hits = ((after["p_up"].to_numpy(dtype=float) > 0.5).astype(int) == after["label"].to_numpy(dtype=int)).astype(float)
    sd = float(ll.std(ddof=1))
    if sd > 0:
        t = (float(ll.mean()) - COIN_LOG_LOSS) / (sd / math.sqrt(n))
        p_ll = float(stats.t.sf(t, df=n - 1))
    else:
        p_ll = 0.0 if ll.mean() > COIN_LOG_LOSS else 1.0
    k = int(hits.sum())
    p_hit = float(stats.binom.cdf(k, n, 0.5))
    broken = min(p_ll, p_hit) <= alpha / 2
    return BreakVerdict(since, n, float(ll.mean()), float(np.mean(hits)), p_ll, p_hit, alpha, broken)


def broken_diagnosis(derisk: Mapping[str, Any], performance: Mapping[str, Any] | None = None) -> Diagnosis:
    """The diagnosis of a de-risked market on a day without a fresh alarm: its champion's relation
    broke (the plain-break test), which is concept drift whatever the detectors said first."""
    since = derisk.get("episode_start") or derisk.get("since") or "?"
    reason = derisk.get("reason") or "worse than a coin"
    return Diagnosis(DiagnosisKind.CONCEPT_DRIFT, f"champion plainly broken since the first alarm on {since}: {reason}", (),
                     {"derisk": dict(derisk), "performance": dict(performance or {})})
