"""Forecast and trading metrics on plain numpy arrays.

The agent compares champion and challenger on these numbers, so they must never surprise it: for
non-empty input every function returns a finite float. A ratio whose denominator is zero (a constant
return series, no losing days) is reported as 0.0 ("undefined, no evidence of skill") rather than
inf or nan. Empty input returns nan, since there is nothing to measure. Bad input (mismatched
lengths, labels outside {0, 1}, probabilities outside [0, 1], non-finite values) raises
``ValueError`` naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray

TRADING_DAYS_PER_YEAR = 252
"""Annualisation factor for daily series."""

PROB_EPS = 1e-15
"""Probabilities are clipped to [eps, 1 - eps] before taking logs."""


def _vec(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}: non-finite value at position {bad} ({arr[bad]!r})")
    return arr


def _labels(name: str, values: ArrayLike) -> np.ndarray:
    arr = _vec(name, values)
    if arr.size and not np.all((arr == 0.0) | (arr == 1.0)):
        bad = int(np.flatnonzero((arr != 0.0) & (arr != 1.0))[0])
        raise ValueError(f"{name}: labels must be 0 or 1, got {arr[bad]!r} at position {bad}")
    return arr


def _probs(name: str, values: ArrayLike) -> np.ndarray:
    arr = _vec(name, values)
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        bad = int(np.flatnonzero((arr < 0.0) | (arr > 1.0))[0])
        raise ValueError(f"{name}: probabilities must lie in [0, 1], got {arr[bad]!r} at position {bad}")
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names}: lengths differ ({a.size} vs {b.size})")


def hit_rate(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of days whose predicted direction (0/1) matched the realised one."""
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    _same_length(t, p, "hit_rate(y_true, y_pred)")
    if t.size == 0:
        return math.nan
    return float(np.mean(t == p))


def log_losses(y_true: ArrayLike, p_up: ArrayLike) -> np.ndarray:
    """Per-day log loss (nats); the loss series a Diebold-Mariano test compares."""
    t, p = _labels("y_true", y_true), _probs("p_up", p_up)
    _same_length(t, p, "log_losses(y_true, p_up)")
    p = np.clip(p, PROB_EPS, 1.0 - PROB_EPS)
    return -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))


def log_loss(y_true: ArrayLike, p_up: ArrayLike) -> float:
    """Mean log loss in nats (0.693 is a coin flip)."""
    losses = log_losses(y_true, p_up)
    return float(losses.mean()) if losses.size else math.nan


def brier_scores(y_true: ArrayLike, p_up: ArrayLike) -> np.ndarray:
    """Per-day squared error of P(up) against the 0/1 outcome."""
    t, p = _labels("y_true", y_true), _probs("p_up", p_up)
    _same_length(t, p, "brier_scores(y_true, p_up)")
    return (p - t) ** 2


def brier(y_true: ArrayLike, p_up: ArrayLike) -> float:
    """Mean Brier score (0.25 is a constant 0.5 forecast)."""
    scores = brier_scores(y_true, p_up)
    return float(scores.mean()) if scores.size else math.nan


def sharpe(returns: ArrayLike, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """Annualised Sharpe ratio of per-period returns (risk-free rate 0); 0.0 if they do not vary."""
    r = _vec("returns", returns)
    if r.size == 0:
        return math.nan
    sd = float(r.std(ddof=1)) if r.size > 1 else 0.0
    if not sd > 1e-15 * max(1.0, float(np.abs(r).max())):
        return 0.0
    return float(r.mean() / sd * math.sqrt(periods_per_year))


def sortino(returns: ArrayLike, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """Annualised Sortino ratio (target 0, downside deviation over all periods); 0.0 without losses."""
    r = _vec("returns", returns)
    if r.size == 0:
        return math.nan
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    if not downside > 0.0:
        return 0.0
    return float(r.mean() / downside * math.sqrt(periods_per_year))


def max_drawdown(returns: ArrayLike) -> float:
    """Largest peak-to-trough fall of compounded equity, as a positive fraction (0.12 = 12 %).

    Equity starts at 1 before the first return, so a loss on day one counts as a drawdown.
    A return below -100 % is clipped to a total loss.
    """
    r = _vec("returns", returns)
    if r.size == 0:
        return math.nan
    equity = np.cumprod(np.concatenate(([1.0], np.maximum(1.0 + r, 0.0))))
    peaks = np.maximum.accumulate(equity)
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = np.where(peaks > 0, 1.0 - equity / peaks, 0.0)
    return float(dd.max())


def turnover(positions: ArrayLike, initial_position: float = 0.0) -> float:
    """Mean absolute position change per period (a flip from +1 to -1 counts 2)."""
    pos = _vec("positions", positions)
    if pos.size == 0:
        return math.nan
    changes = np.abs(np.diff(np.concatenate(([float(initial_position)], pos))))
    return float(changes.mean())
