"""Turn a false-alarm budget into detector thresholds.

Every alarm costs an experiment, so HYDRA sets one system-wide budget (false alarms per 1000 trading
days) and splits it across the monitored streams and their detectors. Thresholds are then derived,
not hand-tuned:

- CUSUM: the in-control average run length (ARL0) is computed with the Brook-Evans Markov-chain
  approximation for the exact increment distribution (normal for standardized values, chi-square
  with one degree of freedom for their squares) and the threshold ``h`` is found by bisection.
  A renewal argument gives false alarms per 1000 days = 1000 / ARL0 (detectors reset after an alarm).
  The ARL is averaged over the error of the reference the input was standardized with, including
  the error of a long-run variance estimate where the input is scaled by one.
- Windowed KS and PSI are evaluated every ``stride`` days; their per-test level is the detector's
  share of the budget times the stride (a union bound, so the realized rate is at most the budget).

The union bound across detectors makes the realized per-feature rate slightly lower than budgeted;
``bench/drift_detectors.py`` measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

IncrementKind = Literal["normal", "chi2"]

#: Share of one stream's budget given to each detector (must sum to 1).
DEFAULT_SHARES: dict[str, float] = {"mean": 0.6, "var": 0.3, "ks": 0.05, "psi": 0.05}


def _increment_cdf(kind: IncrementKind, shift: float, scale: float):
    if kind == "normal":
        return lambda x: stats.norm.cdf(x, loc=shift, scale=scale)
    if kind == "chi2":
        # P((scale*Z + shift)^2 <= x) = Phi((sqrt(x) - shift)/scale) - Phi((-sqrt(x) - shift)/scale)
        def cdf(x: np.ndarray) -> np.ndarray:
            r = np.sqrt(np.maximum(x, 0.0))
            return stats.norm.cdf((r - shift) / scale) - stats.norm.cdf((-r - shift) / scale)

        return cdf
    raise ValueError(f"increment kind must be 'normal' or 'chi2', got {kind!r}")


@lru_cache(maxsize=512)
def cusum_arl(
    k: float,
    h: float,
    kind: IncrementKind = "normal",
    shift: float = 0.0,
    scale: float = 1.0,
    n_states: int = 200,
) -> float:
    """Average run length (days) of the upper CUSUM ``S = max(0, S + X - k)``, alarm at ``S > h``.

    ``X`` is ``N(shift, scale^2)`` for kind "normal" or ``(scale*Z + shift)^2`` for kind "chi2".
    Brook-Evans Markov chain on ``n_states`` cells plus the atom at zero; accurate to about 1%.
    """
    if h <= 0 or not math.isfinite(h):
        raise ValueError(f"CUSUM threshold h must be a positive finite number, got {h}")
    cdf = _increment_cdf(kind, shift, scale)
    w = h / n_states
    values = np.concatenate([[0.0], (np.arange(1, n_states + 1) - 0.5) * w])  # atom + cell centres
    edges = np.arange(0, n_states + 1) * w  # upper edges of cells j = 0..n (cell j covers (e_{j-1}, e_j])
    # P(S' <= e) for S' = s + X - k  ->  F(e - s + k)
    cum = cdf(edges[None, :] - values[:, None] + k)  # shape (n+1, n+1); column 0 is P(S' <= 0)
    trans = np.empty_like(cum)
    trans[:, 0] = cum[:, 0]
    trans[:, 1:] = np.diff(cum, axis=1)
    a = np.eye(n_states + 1) - trans
    with threadpool_limits(1):  # small systems: BLAS threads only contend on a busy machine
        arl = np.linalg.solve(a, np.ones(n_states + 1))
    return float(arl[0])


def _reference_nodes(n_reference: int | None, scale_dof: float | None = None) -> list[tuple[float, float, float]]:
    """Quadrature nodes (weight, shift, scale) for a z standardized with an estimated mean/scale.

    With ``n`` reference values, z = (x - m)/s has shift ~ N(0, 1/n) and scale 1/s with
    s^2 ~ chi2(nu)/nu; ignoring this raises the realized false-alarm rate noticeably. ``nu`` is
    ``n - 1`` for a plain standard deviation, and ``scale_dof`` when the scale is a long-run
    variance estimated with a lag window (far fewer degrees of freedom, see ``long_run_dof``).
    """
    if not n_reference:
        return [(1.0, 0.0, 1.0)]
    nu = float(n_reference - 1) if scale_dof is None else float(min(scale_dof, n_reference - 1))
    xs, ws = np.polynomial.hermite_e.hermegauss(3)
    ws = ws / ws.sum()
    # s^2 ~ chi2(nu)/nu through the Wilson-Hilferty cube, on 7 nodes: the rate is convex in 1/s, and
    # with few degrees of freedom (a long-run variance) the far left tail of s^2 dominates it.
    gx, gw = np.polynomial.hermite_e.hermegauss(7)
    gw = gw / gw.sum()
    c = 2.0 / (9.0 * nu)
    nodes: list[tuple[float, float, float]] = []
    for xd, wd in zip(xs, ws):
        for x2, w2 in zip(gx, gw):
            s = math.sqrt(max(1e-3, (1.0 - c + float(x2) * math.sqrt(c)) ** 3))
            nodes.append((float(wd * w2), float(xd / math.sqrt(n_reference) / s), 1.0 / s))
    return nodes


def long_run_dof(n_reference: int, bandwidth: int) -> float:
    """Equivalent degrees of freedom of a Bartlett long-run variance estimate: 1.5 n / M.

    A CUSUM whose input is scaled by such an estimate sees a scale error far larger than a plain
    standard deviation's, and its false-alarm rate is convex in that scale: averaged over the
    error it is several times the rate at the point estimate.
    """
    return max(2.0, 1.5 * n_reference / max(1, bandwidth))


def expected_alarm_rate(k: float, h: float, kind: IncrementKind = "normal", n_reference: int | None = None,
                        scale_dof: float | None = None) -> float:
    """In-control alarms per day of the upper CUSUM, averaged over the reference estimation error."""
    return sum(w / cusum_arl(k, h, kind, round(sh, 8), round(sc, 8), 120) for w, sh, sc in _reference_nodes(n_reference, scale_dof))


@lru_cache(maxsize=256)
def cusum_threshold(target_arl: float, k: float, kind: IncrementKind = "normal", n_reference: int | None = None,
                    scale_dof: float | None = None) -> float:
    """Smallest ``h`` whose in-control ARL reaches ``target_arl`` days (bisection on the ARL).

    With ``n_reference`` the target is met on average over the error of a reference estimated
    from that many values (see ``_reference_nodes``).
    """
    if not target_arl > 1:
        raise ValueError(f"target ARL must be > 1 day, got {target_arl}")
    target_rate = 1.0 / target_arl
    lo, hi = 1e-3, 1.0
    while expected_alarm_rate(k, hi, kind, n_reference, scale_dof) > target_rate:
        hi *= 2.0
        if hi > 1e4:
            raise ValueError(f"no CUSUM threshold reaches ARL {target_arl} for k={k}")
    while hi - lo > 2e-3:
        mid = round(0.5 * (lo + hi), 6)
        if expected_alarm_rate(k, mid, kind, n_reference, scale_dof) > target_rate:
            lo = mid
        else:
            hi = mid
    return round(hi, 4)


def variance_reference(sigma_ratio: float) -> float:
    """Reference value ``k`` for a CUSUM on squared standardized values, tuned to a std ratio.

    The log-likelihood ratio of N(0, r^2) against N(0, 1) is linear in z^2 with break-even at
    ``2 ln r / (1 - 1/r^2)``; r = 2 (volatility doubling) gives k ~ 1.85.
    """
    if not sigma_ratio > 1:
        raise ValueError(f"sigma_ratio must be > 1, got {sigma_ratio}")
    return 2.0 * math.log(sigma_ratio) / (1.0 - 1.0 / sigma_ratio**2)


@dataclass(frozen=True, slots=True)
class FalseAlarmBudget:
    """System-wide false alarms per 1000 trading days, split evenly across monitored streams."""

    system_alarms_per_1000_days: float
    n_streams: int
    shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))

    def __post_init__(self) -> None:
        if not (self.system_alarms_per_1000_days > 0 and math.isfinite(self.system_alarms_per_1000_days)):
            raise ValueError(
                f"system_alarms_per_1000_days must be > 0, got {self.system_alarms_per_1000_days}"
            )
        if self.n_streams < 1:
            raise ValueError(f"n_streams must be >= 1, got {self.n_streams}")
        total = sum(self.shares.values())
        if abs(total - 1.0) > 1e-6 or any(v < 0 for v in self.shares.values()):
            raise ValueError(f"budget shares must be >= 0 and sum to 1, got {self.shares}")

    @property
    def per_stream(self) -> float:
        """Alarms per 1000 days allowed for one stream (one feature or one performance metric)."""
        return self.system_alarms_per_1000_days / self.n_streams

    @classmethod
    def per_feature(cls, alarms_per_1000_days: float, n_streams: int) -> "FalseAlarmBudget":
        return cls(alarms_per_1000_days * n_streams, n_streams)


@dataclass(frozen=True, slots=True)
class DetectorThresholds:
    """Thresholds for one stream's detectors, derived from its share of the budget."""

    mean_k: float
    mean_h: float
    """Two-sided CUSUM on standardized values (sigma units)."""
    var_k: float
    var_h: float
    """Upper CUSUM on squared standardized values."""
    ks_window: int
    ks_stride: int
    ks_alpha: float
    """Per-test level of the windowed two-sample KS test."""
    psi_window: int
    psi_bins: int
    psi_alpha: float
    """Per-test level used to turn the PSI null distribution into a critical value."""
    per_stream_alarms_per_1000_days: float

    def psi_critical(self, n_window: int, n_reference: int) -> float:
        """PSI above this is an alarm (the null quantile at ``1 - psi_alpha``, see ``psi_critical``)."""
        return psi_critical(n_window, n_reference, self.psi_bins, self.psi_alpha)

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: dict) -> "DetectorThresholds":
        return cls(**data)


def population_stability_index(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` on the reference's quantile bins.

    Empty cells get half an observation so the statistic stays finite.
    """
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    if reference.size < bins or current.size < 2:
        raise ValueError(f"PSI needs >= {bins} reference and >= 2 current values, got {reference.size}, {current.size}")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1)
    p = np.maximum(ref_counts, 0.5) / reference.size
    q = np.maximum(cur_counts, 0.5) / current.size
    return float(np.sum((q - p) * np.log(q / p)))


@lru_cache(maxsize=64)
def psi_critical(n_window: int, n_reference: int, bins: int, alpha: float, n_sims: int = 20000) -> float:
    """Null ``1 - alpha`` quantile of PSI for these sample sizes, by seeded simulation.

    The large-sample law (1/n + 1/m) chi2(bins - 1) is too light in the far tail for the small
    levels a false-alarm budget asks for, so the quantile comes from the statistic itself.
    """
    rng = np.random.default_rng(20240601 + 7 * n_window + 13 * n_reference + bins)
    q = np.linspace(0, 1, bins + 1)[1:-1]
    chunks = []
    for start in range(0, n_sims, 2000):
        size = min(2000, n_sims - start)
        ref = rng.random((size, n_reference))
        cur = rng.random((size, n_window))
        edges = np.quantile(ref, q, axis=1).T[:, None, :]  # (size, 1, bins-1)

        def counts(x: np.ndarray, edges: np.ndarray = edges, size: int = size) -> np.ndarray:
            ge = (x[:, :, None] >= edges).sum(axis=1)  # values at or above each edge
            upper = np.concatenate([np.full((size, 1), x.shape[1]), ge], axis=1)
            return upper - np.concatenate([ge, np.zeros((size, 1))], axis=1)

        p_ = np.maximum(counts(ref), 0.5) / n_reference
        q_ = np.maximum(counts(cur), 0.5) / n_window
        chunks.append(np.sum((q_ - p_) * np.log(q_ / p_), axis=1))
    return float(np.quantile(np.concatenate(chunks), 1.0 - alpha))


#: PSI is only meaningful with enough observations per bin; shorter windows skip it.
MIN_PSI_WINDOW = 100


def thresholds_for_budget(
    budget: FalseAlarmBudget,
    *,
    mean_k: float = 0.4,
    sigma_ratio: float = 2.0,
    ks_window: int = 60,
    ks_stride: int = 20,
    psi_window: int = 120,
    psi_bins: int = 10,
    n_reference: int | None = None,
    lrv_bandwidth: int | None = None,
) -> DetectorThresholds:
    """Derive every detector's threshold from the stream's share of the false-alarm budget.

    ``mean_k`` is half the shift (in sigmas) the mean CUSUM is tuned for (0.4: a compromise between
    1 and 0.5 sigma shifts, measured in bench/drift_detectors.py); ``sigma_ratio`` the
    volatility ratio the variance CUSUM is tuned for; ``n_reference`` the number of training
    values the reference mean/std come from (None: treat them as exact); ``lrv_bandwidth`` the lag
    window of the long-run variance the mean CUSUM's input is scaled by (None: a plain standard
    deviation), whose larger error the mean threshold then allows for (``long_run_dof``).
    """
    if ks_window < 10 or ks_stride < 1:
        raise ValueError(f"ks_window must be >= 10 and ks_stride >= 1, got {ks_window}, {ks_stride}")
    if psi_bins < 2:
        raise ValueError(f"psi_bins must be >= 2, got {psi_bins}")
    rate = budget.per_stream / 1000.0  # alarms per day for this stream
    shares = budget.shares
    dof = long_run_dof(n_reference, lrv_bandwidth) if n_reference and lrv_bandwidth else None
    # Two-sided mean CUSUM: each side gets half of the mean share.
    mean_h = cusum_threshold(2.0 / (rate * shares["mean"]), mean_k, "normal", n_reference, dof) if shares["mean"] else math.inf
    var_k = variance_reference(sigma_ratio)
    var_h = cusum_threshold(1.0 / (rate * shares["var"]), var_k, "chi2", n_reference) if shares["var"] else math.inf
    ks_alpha = min(0.5, rate * shares.get("ks", 0.0) * ks_stride)
    psi_alpha = min(0.5, rate * shares.get("psi", 0.0) * ks_stride)
    return DetectorThresholds(
        mean_k=mean_k,
        mean_h=mean_h,
        var_k=var_k,
        var_h=var_h,
        ks_window=ks_window,
        ks_stride=ks_stride,
        ks_alpha=ks_alpha,
        psi_window=psi_window,
        psi_bins=psi_bins,
        psi_alpha=psi_alpha,
        per_stream_alarms_per_1000_days=budget.per_stream,
    )
