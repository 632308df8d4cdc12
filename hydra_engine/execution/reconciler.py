"""SlippageReconciler: is the slippage model honest? Predicted vs actual over the journalled fills.

It reads the journal's columnar ``fill_slippage_blocks`` (float64 triples predicted, actual,
arrival mid), so a million fills are ~16k blobs and a few numpy passes: sums for the moments,
one argsort per column for Spearman's ranks (average ranks for ties), run two at a time in
threads. Fills priced on DELAYED data are excluded from every statistic and from the verdict
(their "arrival mid" is stale); ``n_delayed_excluded`` says how many.

Definitions (per fill i, predicted p_i and actual a_i, positive is a cost):
bias = mean(p - a) (positive: the model is pessimistic); RMSE = sqrt(mean((p - a)^2));
slope/intercept of the least-squares line a = slope * p + intercept (a perfect model: 1 and 0);
95 % CI of the bias = bias -/+ t(0.975, n-1) * sd(p - a) / sqrt(n); pessimism multiplier =
mean(a) / mean(p) (> 1: costs are worse than predicted: multiply predictions by it). Every figure
is given in price units and in basis points of each fill's arrival mid. Undefined values are NaN.

Verdict (in bps, so markets with different price scales compare): "insufficient data" below
``min_fills`` live fills; else "calibrated" when |bias| <= ``max_abs_bias_bps`` and the
pessimism multiplier is within [``pessimism_low``, ``pessimism_high``]; else "underestimates cost"
(actual above predicted) or "overestimates cost".
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
import numpy as np
import structlog

log = structlog.get_logger(__name__)

VERDICT_INSUFFICIENT = "insufficient data"
VERDICT_CALIBRATED = "calibrated"
VERDICT_UNDER = "underestimates cost"
VERDICT_OVER = "overestimates cost"

_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class CalibrationThresholds:
    """When the model counts as calibrated (section ``[execution.reconciler]``)."""

    min_fills: int = field(default=30, metadata={"range": (2, None)})
    max_abs_bias_bps: float = field(default=2.0, metadata={"range": (0.0, None)})
    pessimism_low: float = field(default=0.67, metadata={"range": (0.0, None)})
    pessimism_high: float = field(default=1.5, metadata={"range": (0.0, None)})

    def __post_init__(self) -> None:
        if self.min_fills < 2:
            raise ValueError(f"min_fills={self.min_fills} must be >= 2")
        if not (0 <= self.pessimism_low <= self.pessimism_high):
            raise ValueError(f"pessimism range [{self.pessimism_low}, {self.pessimism_high}] must be 0 <= low <= high")
        if not self.max_abs_bias_bps >= 0:
            raise ValueError(f"max_abs_bias_bps={self.max_abs_bias_bps} must be >= 0")


@dataclass(frozen=True, slots=True)
class SlippageStats:
    """Predicted vs actual in one unit (price units or bps); NaN where undefined."""

    mean_predicted: float
    mean_actual: float
    bias: float
    rmse: float
    pearson: float
    spearman: float
    slope: float
    intercept: float
    bias_ci_low: float
    bias_ci_high: float
    pessimism_multiplier: float


EMPTY_STATS = SlippageStats(*([_NAN] * 11))


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    """The reconciler's answer. Top-level figures are price units; ``bps`` holds the same in bps."""

    symbol: str | None
    n_fills: int
    """Live fills used."""
    n_delayed_excluded: int
    verdict: str
    verdict_reason: str
    thresholds: CalibrationThresholds
    price: SlippageStats
    bps: SlippageStats

    @property
    def sufficient(self) -> bool:
        return self.verdict != VERDICT_INSUFFICIENT

    @property
    def calibrated(self) -> bool:
        return self.verdict == VERDICT_CALIBRATED

    @property
    def mean_predicted(self) -> float:
        return self.price.mean_predicted

    @property
    def mean_actual(self) -> float:
        return self.price.mean_actual

    @property
    def bias(self) -> float:
        return self.price.bias

    @property
    def rmse(self) -> float:
        return self.price.rmse

    @property
    def correlation(self) -> float:
        return self.price.pearson

    @property
    def pearson(self) -> float:
        return self.price.pearson

    @property
    def spearman(self) -> float:
        return self.price.spearman

    @property
    def slope(self) -> float:
        return self.price.slope

    @property
    def intercept(self) -> float:
        return self.price.intercept

    @property
    def bias_ci(self) -> tuple[float, float]:
        return (self.price.bias_ci_low, self.price.bias_ci_high)

    @property
    def pessimism_multiplier(self) -> float:
        return self.price.pessimism_multiplier


# --------------------------------------------------------------------------- statistics


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (what Spearman needs), as float32 to halve the
    memory (exact for up to 2**23 values: integers and halves)."""
    n = x.shape[0]
    order = np.argsort(x, kind="quicksort")
    xs = x[order]
    new = np.empty(n, dtype=bool)
    if n:
        new[0] = True
        np.not_equal(xs[1:], xs[:-1], out=new[1:])
    del xs
    ranks = np.empty(n, dtype=np.float32)
    if n == 0 or new.all():
        ranks[order] = np.arange(1, n + 1, dtype=np.float32)
        return ranks
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    avg = (starts + (counts + 1) / 2.0).astype(np.float32)
    grp = np.cumsum(new, dtype=np.int32)
    grp -= 1
    del new
    ranks[order] = avg[grp]
    return ranks


def _rank_pearson(rx: np.ndarray, ry: np.ndarray, chunk: int = 1 << 16) -> float:
    """Pearson of two float32 rank arrays with float64 accumulation, a chunk at a time."""
    n = rx.shape[0]
    if n < 2:
        return _NAN
    sx = sy = sxx = syy = sxy = 0.0
    for i in range(0, n, chunk):
        a = rx[i:i + chunk].astype(np.float64)
        b = ry[i:i + chunk].astype(np.float64)
        sx += float(a.sum())
        sy += float(b.sum())
        sxx += float(np.dot(a, a))
        syy += float(np.dot(b, b))
        sxy += float(np.dot(a, b))
    mx, my = sx / n, sy / n
    vx, vy = sxx - n * mx * mx, syy - n * my * my
    if vx <= 0 or vy <= 0:
        return _NAN
    return float(np.clip((sxy - n * mx * my) / math.sqrt(vx * vy), -1.0, 1.0))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx = x - x.mean()
    dy = y - y.mean()
    sxx = float(np.dot(dx, dx))
    syy = float(np.dot(dy, dy))
    if sxx <= 0.0 or syy <= 0.0:
        return _NAN
    return float(np.clip(np.dot(dx, dy) / math.sqrt(sxx * syy), -1.0, 1.0))


_T975 = (12.706204736175, 4.302652729749, 3.182446305284, 2.776445105198, 2.570581835636, 2.446911851145,
         2.364624251593, 2.306004135204, 2.262157162798, 2.228138851986, 2.200985160092, 2.178812829667,
         2.160368656463, 2.144786687918, 2.13144954556, 2.119905299221, 2.109815577833, 2.100922040241,
         2.093024054408, 2.085963447266, 2.079613844728, 2.073873067904, 2.068657610419, 2.063898561628,
         2.059538552753, 2.055529438643, 2.05183051648, 2.048407141795, 2.045229642133, 2.042272456301)
"""Student t 0.975 quantiles for 1..30 degrees of freedom."""
_Z975 = 1.959963984540054


def _t975(dof: int) -> float:
    """Student t 0.975 quantile: a table to 30 dof, then the Cornish-Fisher series (error < 3e-8).
    Kept here so a reconcile never pays for importing scipy."""
    if dof < 1:
        return _NAN
    if dof <= len(_T975):
        return _T975[dof - 1]
    z, v = _Z975, float(dof)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4


def compute_stats(pred: np.ndarray, act: np.ndarray, *, ranks: tuple[np.ndarray, np.ndarray] | None = None) -> SlippageStats:
    """All figures for paired arrays (float64, same length); see the module docstring."""
    n = int(pred.shape[0])
    if n == 0:
        return EMPTY_STATS
    mp, ma = float(pred.mean()), float(act.mean())
    d = pred - act
    bias = float(d.mean())
    rmse = float(math.sqrt(float(np.dot(d, d)) / n))
    if n >= 2:
        sd = float(d.std(ddof=1))
        half = _t975(n - 1) * sd / math.sqrt(n)
        lo, hi = bias - half, bias + half
    else:
        lo = hi = _NAN
    del d
    dp = pred - mp
    da = act - ma
    spp = float(np.dot(dp, dp))
    saa = float(np.dot(da, da))
    spa = float(np.dot(dp, da))
    del dp, da
    pearson = float(np.clip(spa / math.sqrt(spp * saa), -1.0, 1.0)) if spp > 0 and saa > 0 else _NAN
    slope = spa / spp if spp > 0 else _NAN
    intercept = ma - slope * mp if spp > 0 else _NAN
    if n >= 2:
        rp, ra = ranks if ranks is not None else (average_ranks(pred), average_ranks(act))
        spearman = _pearson(rp, ra)
    else:
        spearman = _NAN
    pess = ma / mp if mp != 0 else _NAN
    return SlippageStats(mp, ma, bias, rmse, pearson, spearman, slope, intercept, lo, hi, pess)


def verdict_for(n: int, bps: SlippageStats, th: CalibrationThresholds) -> tuple[str, str]:
    if n < th.min_fills:
        return VERDICT_INSUFFICIENT, f"{n} live fills < min_fills {th.min_fills}"
    bias_ok = abs(bps.bias) <= th.max_abs_bias_bps
    pess = bps.pessimism_multiplier
    pess_ok = not math.isnan(pess) and th.pessimism_low <= pess <= th.pessimism_high
    detail = (f"bias {bps.bias:+.2f} bps (limit +/-{th.max_abs_bias_bps:g}), pessimism multiplier {pess:.2f} "
              f"(range [{th.pessimism_low:g}, {th.pessimism_high:g}])")
    if bias_ok and pess_ok:
        return VERDICT_CALIBRATED, detail
    return (VERDICT_UNDER if bps.mean_actual > bps.mean_predicted else VERDICT_OVER), detail


def analyse(triples: np.ndarray, *, symbol: str | None, n_delayed: int,
            thresholds: CalibrationThresholds) -> ReconciliationReport:
    """The report for an (n, 3) array of (predicted, actual, arrival mid) rows (CPU: run in a thread)."""
    pred = np.ascontiguousarray(triples[:, 0])
    act = np.ascontiguousarray(triples[:, 1])
    mid = triples[:, 2]
    pred_bps = pred / mid * 10_000.0
    act_bps = act / mid * 10_000.0
    n = int(pred.shape[0])
    if n >= 2:
        with ThreadPoolExecutor(max_workers=2) as pool:  # numpy sorts release the GIL
            futs = [pool.submit(average_ranks, a) for a in (pred, act, pred_bps, act_bps)]
            r = [f.result() for f in futs]
        price = compute_stats(pred, act, ranks=(r[0], r[1]))
        del r[:2]
        bps = compute_stats(pred_bps, act_bps, ranks=(r[0], r[1]))
    else:
        price, bps = compute_stats(pred, act), compute_stats(pred_bps, act_bps)
    verdict, reason = verdict_for(n, bps, thresholds)
    return ReconciliationReport(symbol, n, n_delayed, verdict, reason, thresholds, price, bps)


# --------------------------------------------------------------------------- the reconciler


class SlippageReconciler:
    """Reads the journal's slippage blocks and reports predicted vs actual slippage."""

    def __init__(self, conn: aiosqlite.Connection, thresholds: CalibrationThresholds | None = None) -> None:
        self._conn = conn
        self.thresholds = thresholds or CalibrationThresholds()

    async def _blocks(self, symbol: str | None) -> tuple[bytes, int]:
        where = "" if symbol is None else " AND symbol = ?"
        args: tuple[Any, ...] = () if symbol is None else (symbol,)
        async with self._conn.execute(
            f"SELECT COALESCE(SUM(n_fills), 0) FROM fill_slippage_blocks WHERE data_type = 'delayed'{where}", args
        ) as cur:
            row = await cur.fetchone()
        n_delayed = int(row[0]) if row else 0
        async with self._conn.execute(
            f"SELECT data FROM fill_slippage_blocks WHERE data_type = 'live'{where}", args
        ) as cur:
            rows = await cur.fetchall()
        data = b"".join(r[0] for r in rows)
        del rows
        return data, n_delayed

    async def reconcile(self, symbol: str | None = None) -> ReconciliationReport:
        """Predicted vs actual over every live fill (of ``symbol`` if given)."""
        data, n_delayed = await self._blocks(symbol)
        if len(data) % 24:
            raise ValueError(f"fill_slippage_blocks holds {len(data)} bytes, not whole triples: run "
                             "FillJournal.rebuild_blocks()")
        triples = np.frombuffer(data, dtype="<f8").reshape(-1, 3)
        report = await asyncio.to_thread(analyse, triples, symbol=symbol, n_delayed=n_delayed,
                                         thresholds=self.thresholds)
        log.info("reconciler.report", symbol=symbol, n_fills=report.n_fills, verdict=report.verdict,
                 bias_bps=report.bps.bias, pessimism=report.bps.pessimism_multiplier,
                 delayed_excluded=n_delayed)
        return report
