"""The promotion gate: a candidate replaces the champion only on evidence that survives selection.

Three tests, all required:
1. Windowed majority: the candidate has the lower log loss on a recency-weighted majority of the
   walk-forward test windows (weights halve every ``half_life_windows`` windows back).
2. One-sided Diebold-Mariano test on the per-day out-of-sample log-loss differential, with the
   Harvey-Leybourne-Newbold small-sample correction and Student-t reference.
3. Deflated Sharpe ratio of the candidate's out-of-sample signal returns (tradable returns net of
   the cost estimate, the same basis as the champion's), with the number of
   trials = experiments run since the last promotion (a cycle of many tries must clear a higher
   bar).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329

Floats: TypeAlias = Sequence[float] | np.ndarray
"""A 1-D series of numbers: a list or a numpy array."""


@dataclass(frozen=True, slots=True)
class DMResult:
    """Diebold-Mariano-HLN test that the candidate's loss is lower than the champion's."""

    statistic: float
    """HLN-corrected statistic; positive means the candidate's losses are lower."""
    p_value: float
    """One-sided p-value from Student-t with n-1 degrees of freedom."""
    n: int
    mean_diff: float
    """Mean of champion loss minus candidate loss (nats per day for log loss)."""
    horizon: int

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


def diebold_mariano_hln(loss_candidate: Floats, loss_champion: Floats, horizon: int = 1,
                        weights: Floats | None = None) -> DMResult:
    """One-sided DM test (H1: candidate better) with the HLN correction.

    d_t = champion - candidate; the long-run variance uses autocovariances up to lag h-1
    (falling back to lag 0 if that estimate is not positive). ``weights`` (fixed before the
    losses are seen, e.g. the windows' recency weights) test the weighted mean differential: each
    d_t is scaled by n w_t / sum(w), which keeps the test exact under the null of equal expected
    loss on every day, and the degrees of freedom use the effective sample size
    (sum w)^2 / sum w^2, so recent days count more without pretending there are more of them.
    """
    a = np.asarray(loss_candidate, dtype=float)
    b = np.asarray(loss_champion, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"DM test: loss series must be 1-D and the same length, got {a.shape} and {b.shape}")
    if horizon < 1:
        raise ValueError(f"DM test: horizon must be >= 1, got {horizon}")
    n = a.size
    if n < 3:
        raise ValueError(f"DM test: need >= 3 paired days, got {n}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("DM test: losses must be finite")
    d = b - a
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != d.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"DM test: weights must be finite, >= 0, not all 0 and of shape {d.shape}")
        d = d * w * (n / w.sum())
        n_eff = max(3, int(round(float(w.sum()) ** 2 / float(w @ w))))
    else:
        n_eff = n
    mean = float(d.mean())
    dc = d - mean
    gamma0 = float(dc @ dc) / n
    lrv = gamma0 + 2.0 * sum(float(dc[k:] @ dc[:-k]) / n for k in range(1, horizon))
    if lrv <= 0:
        lrv = gamma0
    if lrv <= 0:
        return DMResult(0.0 if mean == 0 else math.copysign(math.inf, mean), 1.0 if mean <= 0 else 0.0, n, mean, horizon)
    dm = mean / math.sqrt(lrv / n)
    correction = math.sqrt((n_eff + 1 - 2 * horizon + horizon * (horizon - 1) / n_eff) / n_eff)
    stat = dm * correction
    p = float(stats.t.sf(stat, df=n_eff - 1))
    return DMResult(float(stat), p, n, mean, horizon)


@dataclass(frozen=True, slots=True)
class DSRResult:
    """Deflated Sharpe ratio (Bailey and Lopez de Prado). Sharpe ratios are per period (daily)."""

    dsr: float
    """Probability that the true Sharpe exceeds the best expected of ``n_trials`` null trials."""
    sharpe: float
    sr0: float
    """Expected maximum Sharpe under the null for ``n_trials`` trials."""
    n_trials: int
    n: int
    skew: float
    kurtosis: float

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """E[max SR] of ``n_trials`` independent null strategies with Sharpe variance ``sr_variance``."""
    if n_trials <= 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe_ratio(returns: Floats, n_trials: int, trial_sharpes: Floats | None = None) -> DSRResult:
    """DSR of per-day ``returns`` after ``n_trials`` trials.

    The variance of Sharpe ratios across trials comes from ``trial_sharpes`` when at least two are
    known, else from the sampling variance of a null Sharpe estimate, 1/(T-1).
    """
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    t = r.size
    if t < 10:
        raise ValueError(f"deflated Sharpe: need >= 10 returns, got {t}")
    if n_trials < 1:
        raise ValueError(f"deflated Sharpe: n_trials must be >= 1, got {n_trials}")
    sd = float(r.std(ddof=1))
    sr = float(r.mean() / sd) if sd > 0 else 0.0
    skew = float(stats.skew(r)) if sd > 0 else 0.0
    kurt = float(stats.kurtosis(r, fisher=False)) if sd > 0 else 3.0
    if trial_sharpes is not None and len(trial_sharpes) >= 2:
        var = float(np.var(np.asarray(trial_sharpes, dtype=float), ddof=1))
    else:
        var = 1.0 / (t - 1)
    sr0 = expected_max_sharpe(n_trials, var)
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    denom = max(denom, 1e-12)
    dsr = float(stats.norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom)))
    return DSRResult(dsr, sr, sr0, int(n_trials), t, skew, kurt)


def recency_weights(n_windows: int, half_life_windows: float) -> np.ndarray:
    """Weights for windows oldest..newest; the newest weighs most, halving every half-life."""
    if n_windows < 1:
        raise ValueError(f"need >= 1 window, got {n_windows}")
    if not half_life_windows > 0:
        raise ValueError(f"half_life_windows must be > 0, got {half_life_windows}")
    age = np.arange(n_windows - 1, -1, -1, dtype=float)
    w = 0.5 ** (age / half_life_windows)
    return w / w.sum()


def weighted_win_fraction(candidate_losses: Floats, champion_losses: Floats, half_life_windows: float = 2.0) -> float:
    """Recency-weighted share of windows where the candidate's loss is strictly lower (ties: half)."""
    a = np.asarray(candidate_losses, dtype=float)
    b = np.asarray(champion_losses, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"window losses must be 1-D, non-empty and the same length, got {a.shape}, {b.shape}")
    wins = np.where(a < b, 1.0, np.where(a == b, 0.5, 0.0))
    return float(recency_weights(a.size, half_life_windows) @ wins)


def day_weights(daily_windows: Floats, n_windows: int, half_life_windows: float) -> np.ndarray:
    """Per-day weights: each window's recency weight shared equally among its days."""
    win = np.asarray(daily_windows, dtype=int)
    if win.ndim != 1 or win.size == 0 or win.min() < 0 or win.max() >= n_windows:
        raise ValueError(f"daily window indices must be 1-D in [0, {n_windows}), got {win.size} values")
    rw = recency_weights(n_windows, half_life_windows)
    counts = np.bincount(win, minlength=n_windows).astype(float)
    return rw[win] / counts[win]


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Thresholds of the promotion gate."""

    dm_alpha: float = 0.05
    min_weighted_win: float = 0.5
    """The weighted win share must exceed this (a strict majority)."""
    dsr_min: float = 0.95
    half_life_windows: float = 2.0
    dm_horizon: int = 1
    min_oos_days: int = 60
    dm_recency_weighted: bool = True
    """Weight each day of the DM test by its window's recency weight (halving every
    ``dm_half_life_windows``), so a long walk-forward over the full history does not drown the
    windows after a change; the false-promotion rate stays at ``dm_alpha`` (bench/promotion_gate.py)."""
    dm_half_life_windows: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.dm_alpha < 0.5:
            raise ValueError(f"gate.dm_alpha must be in (0, 0.5), got {self.dm_alpha}")
        if not 0 <= self.min_weighted_win < 1:
            raise ValueError(f"gate.min_weighted_win must be in [0, 1), got {self.min_weighted_win}")
        if not 0 <= self.dsr_min < 1:
            raise ValueError(f"gate.dsr_min must be in [0, 1), got {self.dsr_min}")


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's verdict with every statistic it used."""

    passed: bool
    reasons: tuple[str, ...]
    """Why it failed (empty when passed)."""
    weighted_win: float
    windows_won: int
    n_windows: int
    dm: DMResult | None
    dsr: DSRResult | None
    n_trials: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "weighted_win": self.weighted_win,
            "windows_won": self.windows_won,
            "n_windows": self.n_windows,
            "dm": self.dm.to_dict() if self.dm else None,
            "dsr": self.dsr.to_dict() if self.dsr else None,
            "n_trials": self.n_trials,
        }


def evaluate_gate(
    candidate_window_losses: Floats,
    champion_window_losses: Floats,
    candidate_daily_losses: Floats,
    champion_daily_losses: Floats,
    candidate_daily_returns: Floats,
    n_trials: int,
    config: GateConfig = GateConfig(),
    trial_sharpes: Floats | None = None,
    daily_windows: Floats | None = None,
) -> GateDecision:
    """Apply all three tests; daily series must be aligned on the same out-of-sample days.

    ``daily_windows``: each day's window index (0 = oldest); with ``config.dm_recency_weighted``
    the DM test weighs the days as the window majority weighs their windows.
    """
    reasons: list[str] = []
    n_days = len(candidate_daily_losses)
    if n_days < config.min_oos_days:
        reasons.append(f"only {n_days} out-of-sample days, need {config.min_oos_days}")
    win = weighted_win_fraction(candidate_window_losses, champion_window_losses, config.half_life_windows)
    won = int(np.sum(np.asarray(candidate_window_losses) < np.asarray(champion_window_losses)))
    if not win > config.min_weighted_win:
        reasons.append(f"weighted window win share {win:.2f} <= {config.min_weighted_win:.2f}")
    dm = dsr = None
    try:
        weights = None
        if daily_windows is not None and config.dm_recency_weighted:
            weights = day_weights(daily_windows, len(candidate_window_losses), config.dm_half_life_windows)
        dm = diebold_mariano_hln(candidate_daily_losses, champion_daily_losses, config.dm_horizon, weights)
        if not dm.p_value < config.dm_alpha:
            reasons.append(f"DM-HLN p={dm.p_value:.3f} >= {config.dm_alpha}")
    except ValueError as exc:
        reasons.append(f"DM-HLN: {exc}")
    try:
        dsr = deflated_sharpe_ratio(candidate_daily_returns, max(1, n_trials), trial_sharpes)
        if not dsr.dsr >= config.dsr_min:
            reasons.append(f"deflated Sharpe {dsr.dsr:.3f} < {config.dsr_min} ({n_trials} trials)")
    except ValueError as exc:
        reasons.append(f"deflated Sharpe: {exc}")
    return GateDecision(not reasons, tuple(reasons), win, won, len(candidate_window_losses), dm, dsr, int(n_trials))


@dataclass(frozen=True, slots=True)
class CandidateEvaluation:
    """The gate applied to one finished experiment (candidate vs the champion's spec)."""

    experiment_id: str
    gate: GateDecision | None
    candidate_oos_log_loss: float | None
    champion_oos_log_loss: float | None
    candidate_sharpe_daily: float | None
    error: str | None = None
    champion_sharpe_daily: float | None = None
    """The champion's daily Sharpe on the same net, tradable basis (reported beside the candidate's)."""

    @property
    def passed(self) -> bool:
        return self.gate is not None and self.gate.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "gate": self.gate.to_dict() if self.gate else None,
            "candidate_oos_log_loss": self.candidate_oos_log_loss,
            "champion_oos_log_loss": self.champion_oos_log_loss,
            "candidate_sharpe_daily": self.candidate_sharpe_daily,
            "champion_sharpe_daily": self.champion_sharpe_daily,
            "error": self.error,
        }


def episode_alpha(alpha: float, look: int, n_candidates: int) -> float:
    """The DM level of each candidate at the ``look``-th batch (1, 2, ...) of one drift episode.

    Every batch of an episode tests the same post-alarm days again (with more of them) and each
    batch holds several candidates: look k spends ``alpha * 2**-k``, shared equally by its
    candidates. Summed over the episode that is at most ``alpha`` whatever the dependence between
    the tests (a union bound), so a false alarm followed by repeated tries still promotes a candidate
    with no edge at most ``alpha`` of the time on the DM test (bench/promotion_gate.py measures it).
    """
    if look < 1 or n_candidates < 1:
        raise ValueError(f"episode_alpha: look and n_candidates must be >= 1, got {look}, {n_candidates}")
    return alpha * 0.5 ** look / n_candidates


def _daily_sharpe(r: np.ndarray) -> float:
    sd = float(r.std(ddof=1)) if r.size > 1 else 0.0
    return float(r.mean() / sd) if sd > 0 else 0.0


def evaluate_result(experiment_id: str, result: dict[str, Any], n_trials: int, trial_sharpes: Floats | None, config: GateConfig) -> CandidateEvaluation:
    """Gate a worker result (``experiment_worker.evaluate_candidate`` output). CPU-light.

    Both sides must carry the same ``basis`` (tradable returns, net of the same cost): a gross
    champion against a net candidate would tilt the comparison, so such a result is refused.
    """
    try:
        cand, champ, daily = result["candidate"], result.get("champion"), result["daily"]
        if not champ:
            return CandidateEvaluation(experiment_id, None, cand.get("oos_log_loss"), None, None, "no champion to compare with")
        cl = np.asarray(daily["candidate_log_loss"], dtype=float)
        bl = np.asarray(daily["champion_log_loss"], dtype=float)
        cr = np.asarray(daily["candidate_return"], dtype=float)
        br = np.asarray(daily["champion_return"], dtype=float)
        cw = [math.nan if v is None else v for v in cand["window_log_loss"]]
        bw = [math.nan if v is None else v for v in champ["window_log_loss"]]
    except (KeyError, TypeError) as exc:
        return CandidateEvaluation(experiment_id, None, None, None, None, f"malformed experiment result: missing {exc}")
    if cand.get("basis") is None or cand.get("basis") != champ.get("basis"):
        return CandidateEvaluation(experiment_id, None, None, None, None,
                                   f"candidate and champion scored on different bases: {cand.get('basis')} vs {champ.get('basis')}")
    windows = daily.get("window")
    cr_dsr = cr
    if daily.get("candidate_return_all") is not None:  # comparison since the alarm, Sharpe on all of it
        cr_dsr = np.asarray(daily["candidate_return_all"], dtype=float)
    gate = evaluate_gate(cw, bw, cl, bl, cr_dsr, n_trials, config, trial_sharpes,
                         None if windows is None else np.asarray(windows, dtype=int))
    return CandidateEvaluation(experiment_id, gate, float(cl.mean()) if cl.size else None, float(bl.mean()) if bl.size else None,
                               _daily_sharpe(cr), champion_sharpe_daily=_daily_sharpe(br))
