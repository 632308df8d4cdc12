"""Drift detectors: per-feature drift against the training reference and drift in realized performance.

Each detector is fed one observation per trading day, keeps its state as plain JSON-able data
(``to_dict`` / ``from_dict``) so a restart resumes exactly where it stopped, and resets after an
alarm so false alarms form a renewal process whose rate the thresholds module controls.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
from scipy import special, stats

from hydra_engine.agent.thresholds import (
    MIN_PSI_WINDOW,
    DetectorThresholds,
    cusum_threshold,
    population_stability_index,
)

__all__ = [
    "DetectorReading",
    "DriftFinding",
    "DriftMonitor",
    "FeatureMonitor",
    "PerformanceMonitor",
    "RealizedOutcome",
    "TwoSidedCusum",
    "UpperCusum",
    "lag1_autocorrelation",
    "population_stability_index",
]

#: Largest reference sample kept per feature for KS/PSI (keeps persisted state small).
MAX_REFERENCE_SAMPLE = 500

#: Deterministic calendar features: their "drift" is the calendar moving on, so they are not monitored.
CALENDAR_PREFIXES = ("dow_", "month_")


def lag1_autocorrelation(values: np.ndarray) -> float:
    """Lag-1 autocorrelation of an ordered series; 0 unless significant at about 3 standard errors.

    Rolling-window features (20-day volatility, 20-day returns) are strongly autocorrelated; a
    CUSUM or KS test designed for independent days would overrun its false-alarm budget on them,
    so each feature is monitored through its AR(1) innovations.
    """
    x = np.asarray(values, dtype=float)
    if x.size < 30:
        return 0.0
    xc = x - x.mean()
    denom = float(xc @ xc)
    if denom <= 0:
        return 0.0
    phi = float(xc[1:] @ xc[:-1]) / denom
    if abs(phi) < 3.0 / np.sqrt(x.size):
        return 0.0
    return float(np.clip(phi, -0.99, 0.99))


AR_ORDER = 5
"""Lags of the autoregression each feature is whitened with: a 5-day average inside a feature
(the moving-average cross) leaves innovations that move together for about a week after one lag."""


def ar_whitening(values: np.ndarray, order: int = AR_ORDER) -> tuple[tuple[float, ...], float]:
    """Yule-Walker AR(``order``) coefficients of a standardized series and its innovations' std.

    ``((), 1.0)`` when no autocorrelation up to ``order`` reaches about 3 standard errors (the
    feature is monitored as it is). Yule-Walker estimates are always stationary.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 30:
        return (), 1.0
    xc = x - x.mean()
    denom = float(xc @ xc)
    if denom <= 0:
        return (), 1.0
    rho = np.array([float(xc[k:] @ xc[:-k]) / denom for k in range(1, order + 1)])
    if np.all(np.abs(rho) < 3.0 / math.sqrt(x.size)):
        return (), 1.0
    from scipy.linalg import solve_toeplitz

    phi = np.asarray(solve_toeplitz(np.concatenate(([1.0], rho[:-1])), rho), dtype=float)
    var = 1.0 - float(phi @ rho)
    if not (math.isfinite(var) and var > 1e-4):
        return (), 1.0
    return tuple(float(v) for v in phi), math.sqrt(var)


LONG_RUN_LAGS = 20
"""Lag window of ``long_run_factor``: the longest feature window. The thresholds take it as the
bandwidth of the long-run variance estimate the CUSUM inputs are scaled by."""


def long_run_factor(values: np.ndarray, max_lag: int = LONG_RUN_LAGS) -> float:
    """Variance of a sum of n consecutive values over n times their variance (at least 1).

    Bartlett-weighted autocorrelations up to ``max_lag`` days (the longest feature window): what
    is left of a rolling-window feature's memory after the AR(1) step. A CUSUM accumulates sums, so
    its input is divided by the square root of this, or it alarms far above its budget on a
    20-day feature whose innovations still move together for days.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 3 * max_lag:
        return 1.0
    x = x - x.mean()
    var = float(x @ x) / n
    if var <= 0:
        return 1.0
    acc = 1.0
    for k in range(1, max_lag + 1):
        acc += 2.0 * (1.0 - k / (max_lag + 1)) * float(x[k:] @ x[:-k]) / n / var
    return max(1.0, acc)


#: Quantiles whose indicator series stand for the empirical distribution function in ``window_factor``.
WINDOW_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def window_factor(scores: np.ndarray) -> float:
    """Long-run factor of the empirical distribution function: the largest over a few quantiles.

    KS and PSI compare a window's distribution with the reference's, so the days of a window count
    as fewer independent days by the long-run factor of the indicators ``1{z <= q}``, not of z or
    z^2: big days cluster in a rolling-volatility feature's innovations (a large return enters the
    window and leaves it) while their mean and square barely move together.
    """
    x = np.asarray(scores, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 60:
        return 1.0
    return max(long_run_factor((x <= np.quantile(x, q)).astype(float)) for q in WINDOW_QUANTILES)


def normal_scores(values: np.ndarray, reference_sorted: np.ndarray) -> np.ndarray:
    """Each value's mid-rank in the reference, as a standard normal quantile.

    Feature innovations are far from normal (a 20-day volatility jumps when a big day enters its
    window), and the CUSUMs' thresholds assume normal inputs; ranked against the reference's own
    values they are normal under no change whatever their shape. Bounded by the reference's size
    (about +-2.9 for 500 values), so one extreme day cannot raise an alarm on its own.
    """
    ref = np.asarray(reference_sorted, dtype=float)
    v = np.asarray(values, dtype=float)
    below = np.searchsorted(ref, v, side="left")
    at_or_below = np.searchsorted(ref, v, side="right")
    f = (0.5 * (below + at_or_below) + 0.5) / (ref.size + 1)
    return np.asarray(special.ndtri(f), dtype=float)


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """One alarm: ``stream`` (a feature or ``perf:<metric>``) crossed ``threshold`` on ``date``."""

    stream: str
    detector: str
    """cusum_mean_up, cusum_mean_down, cusum_var, ks, psi, perf_log_loss, perf_hit_rate, perf_pnl."""
    statistic: float
    threshold: float
    date: str
    """ISO trading date of the observation that raised the alarm."""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class DetectorReading:
    """A detector's current statistic next to its threshold, for the TUI's agent pane."""

    stream: str
    detector: str
    statistic: float
    threshold: float


class TwoSidedCusum:
    """Page's CUSUM on standardized values, both directions (mean up / mean down)."""

    def __init__(self, k: float, h: float, s_hi: float = 0.0, s_lo: float = 0.0) -> None:
        self.k, self.h, self.s_hi, self.s_lo = float(k), float(h), float(s_hi), float(s_lo)

    def update(self, z: float) -> list[tuple[str, float]]:
        self.s_hi = max(0.0, self.s_hi + z - self.k)
        self.s_lo = max(0.0, self.s_lo - z - self.k)
        alarms: list[tuple[str, float]] = []
        if self.s_hi > self.h:
            alarms.append(("cusum_mean_up", self.s_hi))
        if self.s_lo > self.h:
            alarms.append(("cusum_mean_down", self.s_lo))
        if alarms:
            self.s_hi = self.s_lo = 0.0
        return alarms

    def to_dict(self) -> dict[str, float]:
        return {"k": self.k, "h": self.h, "s_hi": self.s_hi, "s_lo": self.s_lo}

    @classmethod
    def from_dict(cls, d: Mapping[str, float]) -> "TwoSidedCusum":
        return cls(d["k"], d["h"], d["s_hi"], d["s_lo"])


class UpperCusum:
    """One-sided CUSUM ``S = max(0, S + x - k)``; used on squared z (volatility) and on losses."""

    def __init__(self, k: float, h: float, s: float = 0.0) -> None:
        self.k, self.h, self.s = float(k), float(h), float(s)

    def update(self, x: float) -> float | None:
        self.s = max(0.0, self.s + x - self.k)
        if self.s > self.h:
            value, self.s = self.s, 0.0
            return value
        return None

    def to_dict(self) -> dict[str, float]:
        return {"k": self.k, "h": self.h, "s": self.s}

    @classmethod
    def from_dict(cls, d: Mapping[str, float]) -> "UpperCusum":
        return cls(d["k"], d["h"], d["s"])


class FeatureMonitor:
    """All detectors of one feature: CUSUM on z and z^2, windowed KS, PSI (long windows only)."""

    def __init__(
        self,
        name: str,
        ref_mean: float,
        ref_std: float,
        reference: Iterable[float],
        thresholds: DetectorThresholds,
        *,
        phi: float | Iterable[float] = 0.0,
        innov_sd: float | None = None,
        lr_mean: float = 1.0,
        lr_var: float = 1.0,
        lr_window: float | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        if not (math.isfinite(ref_std) and ref_std > 0):
            raise ValueError(f"feature {name!r}: reference std must be finite and > 0, got {ref_std}")
        self.name = name
        self.ref_mean = float(ref_mean)
        self.ref_std = float(ref_std)
        self.reference = np.asarray(list(reference), dtype=float)
        """KS/PSI reference: standardized innovations of the training values."""
        self._sorted = np.sort(self.reference)
        coefs = (float(phi),) if isinstance(phi, (int, float)) else tuple(float(v) for v in phi)
        self.phi: tuple[float, ...] = tuple(c for c in coefs) if any(coefs) else ()
        """AR coefficients (lag 1 first) the feature is whitened with; () when it is not."""
        if innov_sd is None:  # a record of the single-lag days: sqrt(1 - phi^2)
            innov_sd = math.sqrt(1.0 - self.phi[0] ** 2) if len(self.phi) == 1 else 1.0
        self.innov_sd = float(innov_sd)
        self.lr_mean = float(lr_mean)
        """sqrt(long-run factor) of the innovations: the mean CUSUM reads z / lr_mean."""
        self.lr_var = float(lr_var)
        """sqrt(long-run factor) of the squared innovations: the variance CUSUM reads 1 + (z^2 - 1) / lr_var."""
        self.lr_window = float(lr_window) if lr_window is not None else max(self.lr_mean, self.lr_var)
        """sqrt(long-run factor) that shrinks a window's size for KS and PSI (see ``window_factor``)."""
        self.t = thresholds
        state = state or {}
        prev = state.get("prev")
        self.prev: list[float] = [] if prev is None else ([float(prev)] if isinstance(prev, (int, float)) else [float(v) for v in prev])
        """The last standardized values, newest first (as many as ``phi`` has lags)."""
        self.mean = (
            TwoSidedCusum.from_dict(state["mean"]) if "mean" in state else TwoSidedCusum(thresholds.mean_k, thresholds.mean_h)
        )
        self.var = UpperCusum.from_dict(state["var"]) if "var" in state else UpperCusum(thresholds.var_k, thresholds.var_h)
        window = max(thresholds.ks_window, thresholds.psi_window)
        self.window: deque[float] = deque(state.get("window", []), maxlen=window)
        self.since_test = int(state.get("since_test", 0))
        self.n_seen = int(state.get("n_seen", 0))
        self.last_ks_p = float(state.get("last_ks_p", 1.0))
        self.last_psi = float(state.get("last_psi", 0.0))

    @classmethod
    def from_reference(cls, name: str, values: Iterable[float], thresholds: DetectorThresholds, seed: int = 0) -> "FeatureMonitor":
        """``values`` in time order (the AR(1) coefficient is estimated from their order)."""
        arr = np.asarray(list(values), dtype=float)
        arr = arr[np.isfinite(arr)]
        if arr.size < 30:
            raise ValueError(f"feature {name!r}: need >= 30 finite reference values, got {arr.size}")
        mean, std = float(arr.mean()), float(arr.std(ddof=1))
        if not std > 0:
            raise ValueError(f"feature {name!r}: reference values are constant; nothing to monitor")
        u = (arr - mean) / std
        phi, innov_sd = ar_whitening(u)
        p = len(phi)
        innov = u
        if p:
            lagged = sum(c * u[p - k - 1 : u.size - k - 1] for k, c in enumerate(phi))
            innov = (u[p:] - lagged) / innov_sd
        sample = innov
        if innov.size > MAX_REFERENCE_SAMPLE:
            sample = np.random.default_rng(seed).choice(innov, MAX_REFERENCE_SAMPLE, replace=False)
        scores = normal_scores(innov, np.sort(sample))
        lr_mean = math.sqrt(long_run_factor(scores))
        lr_var = math.sqrt(long_run_factor(scores * scores))
        lr_window = math.sqrt(window_factor(scores))
        return cls(name, mean, std, sample, thresholds, phi=phi, innov_sd=innov_sd, lr_mean=lr_mean, lr_var=lr_var,
                   lr_window=max(lr_mean, lr_var, lr_window))

    def update(self, x: float, date: str) -> list[DriftFinding]:
        """Feed one day's value; non-finite values are data-quality issues and are skipped here."""
        if not math.isfinite(x):
            return []
        self.n_seen += 1
        u = (x - self.ref_mean) / self.ref_std
        p = len(self.phi)
        if p and len(self.prev) >= p:
            z = (u - sum(c * v for c, v in zip(self.phi, self.prev))) / self.innov_sd
        else:
            z = u
        self.prev = [u, *self.prev][:max(p, 1)]
        zn = float(normal_scores(np.asarray([z]), self._sorted)[0]) if self._sorted.size >= 30 else z
        findings = [
            DriftFinding(self.name, det, stat, self.t.mean_h, date, f"z={z:+.2f}") for det, stat in self.mean.update(zn / self.lr_mean)
        ]
        v = self.var.update(1.0 + (zn * zn - 1.0) / self.lr_var)
        if v is not None:
            findings.append(DriftFinding(self.name, "cusum_var", v, self.t.var_h, date, f"z^2={z * z:.2f}"))
        self.window.append(float(z))
        self.since_test += 1
        if self.since_test >= self.t.ks_stride and len(self.window) >= self.t.ks_window:
            self.since_test = 0
            findings.extend(self._window_tests(date))
        return findings

    def _window_tests(self, date: str) -> list[DriftFinding]:
        out: list[DriftFinding] = []
        values = np.fromiter(self.window, dtype=float)
        ks_vals = values[-self.t.ks_window :]
        res = stats.ks_2samp(ks_vals, self.reference)
        # Days in a window still move together after whitening (a 20-day volatility keeps a big day
        # for 20 days): the window counts as fewer independent days, n / (long-run factor).
        shrink = self.lr_window**2
        if shrink > 1.0:
            n_eff, m = ks_vals.size / shrink, self.reference.size
            self.last_ks_p = float(stats.kstwobign.sf(float(res.statistic) * math.sqrt(n_eff * m / (n_eff + m))))
        else:
            self.last_ks_p = float(res.pvalue)
        alarm = False
        if self.last_ks_p < self.t.ks_alpha:
            out.append(DriftFinding(self.name, "ks", float(res.statistic), self.t.ks_alpha, date, f"p={self.last_ks_p:.2e}"))
            alarm = True
        if self.t.psi_window >= MIN_PSI_WINDOW and values.size >= self.t.psi_window and self.reference.size >= 5 * self.t.psi_bins:
            psi_vals = values[-self.t.psi_window :]
            self.last_psi = population_stability_index(self.reference, psi_vals, self.t.psi_bins)
            crit = self.t.psi_critical(max(2 * self.t.psi_bins, int(psi_vals.size / shrink)), self.reference.size)
            if self.last_psi > crit:
                out.append(DriftFinding(self.name, "psi", self.last_psi, crit, date))
                alarm = True
        if alarm:
            self.window.clear()
        return out

    def readings(self) -> list[DetectorReading]:
        return [
            DetectorReading(self.name, "cusum_mean", max(self.mean.s_hi, self.mean.s_lo), self.mean.h),
            DetectorReading(self.name, "cusum_var", self.var.s, self.var.h),
            DetectorReading(self.name, "ks_p", self.last_ks_p, self.t.ks_alpha),
            DetectorReading(self.name, "psi", self.last_psi, self.t.psi_critical(self.t.psi_window, max(self.reference.size, 1))),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ref_mean": self.ref_mean,
            "ref_std": self.ref_std,
            "phi": list(self.phi),
            "innov_sd": self.innov_sd,
            "lr_mean": self.lr_mean,
            "lr_var": self.lr_var,
            "lr_window": self.lr_window,
            "reference": self.reference.tolist(),
            "state": {
                "prev": self.prev,
                "mean": self.mean.to_dict(),
                "var": self.var.to_dict(),
                "window": list(self.window),
                "since_test": self.since_test,
                "n_seen": self.n_seen,
                "last_ks_p": self.last_ks_p,
                "last_psi": self.last_psi,
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], thresholds: DetectorThresholds) -> "FeatureMonitor":
        return cls(d["name"], d["ref_mean"], d["ref_std"], d["reference"], thresholds, phi=d.get("phi", 0.0), innov_sd=d.get("innov_sd"),
                   lr_mean=d.get("lr_mean", 1.0), lr_var=d.get("lr_var", 1.0), lr_window=d.get("lr_window"), state=d["state"])


class DriftMonitor:
    """Per-feature monitors for one model's training reference; fed one feature row per day."""

    def __init__(self, features: Mapping[str, FeatureMonitor], thresholds: DetectorThresholds) -> None:
        self.features = dict(features)
        self.thresholds = thresholds

    @classmethod
    def from_reference(cls, reference: Mapping[str, Iterable[float]], thresholds: DetectorThresholds) -> "DriftMonitor":
        """``reference`` maps feature name -> training values in time order (a DataFrame works).

        Calendar features are skipped (see ``CALENDAR_PREFIXES``).
        """
        monitors = {}
        for i, name in enumerate(reference.keys()):
            if str(name).startswith(CALENDAR_PREFIXES):
                continue
            monitors[str(name)] = FeatureMonitor.from_reference(str(name), np.asarray(reference[name], dtype=float), thresholds, seed=i)
        return cls(monitors, thresholds)

    def update(self, row: Mapping[str, float], date: str) -> list[DriftFinding]:
        findings: list[DriftFinding] = []
        for name, mon in self.features.items():
            value = row.get(name, math.nan)
            findings.extend(mon.update(float(value) if value is not None else math.nan, date))
        return findings

    def readings(self) -> list[DetectorReading]:
        return [r for mon in self.features.values() for r in mon.readings()]

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds.to_dict(), "features": [m.to_dict() for m in self.features.values()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DriftMonitor":
        t = DetectorThresholds.from_dict(d["thresholds"])
        return cls({f["name"]: FeatureMonitor.from_dict(f, t) for f in d["features"]}, t)


@dataclass(frozen=True, slots=True)
class RealizedOutcome:
    """The champion's realized result for one trading day, once the next day's move is known."""

    date: str
    prob_up: float
    label: int
    """1 if the market went up over the label horizon, else 0."""
    signal_return: float
    """Return of the model's own signal on the tradable return, net of cost (``realized_signal_pnl``)."""

    @property
    def log_loss(self) -> float:
        p = min(max(self.prob_up, 1e-6), 1 - 1e-6)
        return -math.log(p if self.label == 1 else 1 - p)

    @property
    def hit(self) -> int:
        return int((self.prob_up >= 0.5) == (self.label == 1))


class PerformanceMonitor:
    """Performance drift on realized outcomes: log loss up, hit rate down, signal P&L down.

    Each metric is compared with a reference (the champion's out-of-sample days: its held-out
    segment or walk-forward, or the first ``warmup`` realized days) and fed to a one-sided CUSUM
    tuned for a ``k_sigma``-sigma deterioration, with the stream's whole share of the false-alarm
    budget. Log loss and P&L are skewed and heavy-tailed, so they enter as normal scores against the
    reference's own values (``normal_scores``); the threshold allows for a reference of only a few
    hundred days (its mean and spread are estimates).
    """

    METRICS = ("log_loss", "hit_rate", "pnl")
    RANKED = ("log_loss", "pnl")
    """Metrics fed as normal scores against the reference sample (the hit rate is 0/1: standardized)."""
    MAX_SAMPLE = 500

    def __init__(self, per_stream_alarms_per_1000_days: float, *, k_sigma: float = 0.25, warmup: int = 60, state: Mapping[str, Any] | None = None) -> None:
        self.rate = float(per_stream_alarms_per_1000_days)
        self.k_sigma = float(k_sigma)
        self.warmup = int(warmup)
        state = state or {}
        self.reference: dict[str, list[float]] | None = state.get("reference")
        self.samples: dict[str, list[float]] = {m: list(v) for m, v in (state.get("samples") or {}).items()}
        self._sorted = {m: np.sort(np.asarray(v, dtype=float)) for m, v in self.samples.items()}
        self.n_reference: int | None = state.get("n_reference")
        self.pending: list[list[float]] = [list(x) for x in state.get("pending", [])]
        if "cusums" in state:  # a restore keeps the threshold its CUSUMs hold (deriving one takes most of a second)
            self.cusums = {m: UpperCusum.from_dict(state["cusums"][m]) for m in self.METRICS}
            self.h = self.cusums["log_loss"].h
        else:
            self.h = cusum_threshold(1000.0 / self.rate, self.k_sigma, "normal", self.n_reference)
            self.cusums = {m: UpperCusum(self.k_sigma, self.h) for m in self.METRICS}
        self.recent: deque[list[float]] = deque(state.get("recent", []), maxlen=250)

    def set_reference(self, log_losses: Iterable[float], hits: Iterable[float], pnls: Iterable[float]) -> None:
        """Reference from out-of-sample days; resets the CUSUMs (a new champion starts clean)."""
        ll, hi, pn = (np.asarray(list(x), dtype=float) for x in (log_losses, hits, pnls))
        if min(ll.size, hi.size, pn.size) < 20:
            raise ValueError(f"performance reference needs >= 20 days per metric, got {ll.size}, {hi.size}, {pn.size}")
        def ms(a: np.ndarray) -> list[float]:
            sd = float(a.std(ddof=1))
            return [float(a.mean()), sd if sd > 1e-9 else 1e-9]
        self.reference = {"log_loss": ms(ll), "hit_rate": ms(hi), "pnl": ms(pn)}
        self.samples = {m: [float(v) for v in a[np.isfinite(a)][-self.MAX_SAMPLE:]] for m, a in (("log_loss", ll), ("pnl", pn))}
        self._sorted = {m: np.sort(np.asarray(v, dtype=float)) for m, v in self.samples.items()}
        self.n_reference = int(min(ll.size, hi.size, pn.size))
        self.h = cusum_threshold(1000.0 / self.rate, self.k_sigma, "normal", self.n_reference)
        self.pending = []
        for c in self.cusums.values():
            c.s = 0.0
            c.h = self.h

    def _score(self, metric: str, value: float) -> float:
        """The day's value in reference units: a normal score (ranked metrics) or a z-score."""
        ref = self._sorted.get(metric)
        if metric in self.RANKED and ref is not None and ref.size >= 20:
            return float(normal_scores(np.asarray([value]), ref)[0])
        assert self.reference is not None
        mean, sd = self.reference[metric]
        return (value - mean) / sd

    def update(self, outcome: RealizedOutcome) -> list[DriftFinding]:
        values = [outcome.log_loss, float(outcome.hit), outcome.signal_return]
        if not all(math.isfinite(v) for v in values):
            return []
        self.recent.append(values)
        if self.reference is None:
            self.pending.append(values)
            if len(self.pending) >= self.warmup:
                arr = np.asarray(self.pending)
                self.set_reference(arr[:, 0], arr[:, 1], arr[:, 2])
            return []
        findings = []
        # Sign so that "worse" is positive: loss up, hit rate down, pnl down.
        for metric, value, sign in zip(self.METRICS, values, (1.0, -1.0, -1.0)):
            stat = self.cusums[metric].update(sign * self._score(metric, value))
            if stat is not None:
                findings.append(DriftFinding(f"perf:{metric}", f"perf_{metric}", stat, self.h, outcome.date))
        return findings

    def recent_summary(self, n: int = 60) -> dict[str, float]:
        """Mean log loss, hit rate and pnl over the last ``n`` realized days (for evidence)."""
        if not self.recent:
            return {}
        arr = np.asarray(list(self.recent)[-n:])
        return {"n_days": int(arr.shape[0]), "log_loss": float(arr[:, 0].mean()), "hit_rate": float(arr[:, 1].mean()), "pnl_mean": float(arr[:, 2].mean())}

    def readings(self) -> list[DetectorReading]:
        return [DetectorReading(f"perf:{m}", f"perf_{m}", c.s, c.h) for m, c in self.cusums.items()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "k_sigma": self.k_sigma,
            "warmup": self.warmup,
            "state": {
                "reference": self.reference,
                "samples": self.samples,
                "n_reference": self.n_reference,
                "pending": self.pending,
                "cusums": {m: c.to_dict() for m, c in self.cusums.items()},
                "recent": list(self.recent),
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PerformanceMonitor":
        return cls(d["rate"], k_sigma=d["k_sigma"], warmup=d["warmup"], state=d["state"])
