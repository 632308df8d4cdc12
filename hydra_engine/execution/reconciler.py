"""SlippageReconciler: is the slippage model honest? Predicted vs actual over the journalled fills.

It reads the journal's columnar ``fill_slippage_blocks`` (float64 triples predicted, actual,
arrival mid) plus the journal's short unpacked tail (``fills`` rows above the fold mark, see
``fill_journal``), so a million fills are ~16k blobs copied into one preallocated array, then a
few numpy passes: centred sums for the moments, and one argsort per column for Spearman's ranks
(average ranks for ties, float32), the two in parallel threads. Sums of products use einsum, not
BLAS (see ``_dot``). Spearman is computed once, in bps. Fills priced on DELAYED data are excluded
from every statistic and from the verdict (their "arrival mid" is stale); ``n_delayed_excluded``
says how many.

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
import sqlite3
import struct
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
_TRIPLE = struct.Struct("<ddd")


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
    slope: float
    intercept: float
    bias_ci_low: float
    bias_ci_high: float
    pessimism_multiplier: float


EMPTY_STATS = SlippageStats(*([_NAN] * 10))


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
    spearman: float
    """Spearman's rank correlation of predicted vs actual, computed in bps (scale-free across
    markets; within one market it ranks the same costs). NaN below 2 fills or without variation."""

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


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of products in float64 on the calling thread. Not ``np.dot``: that is OpenBLAS, which
    wakes its own thread pool for long vectors, and on a loaded machine waiting for those threads
    cost up to hundreds of ms per call (measured); einsum's loop takes ~0.5 ms per million."""
    return float(np.einsum("i,i->", a, b, dtype=np.float64))


def _rank_pearson(rx: np.ndarray, ry: np.ndarray) -> float:
    """Pearson of two float32 rank arrays, accumulated in float64 (no float64 copies)."""
    n = rx.shape[0]
    if n < 2:
        return _NAN
    sx, sy = float(rx.sum(dtype=np.float64)), float(ry.sum(dtype=np.float64))
    sxx, syy, sxy = _dot(rx, rx), _dot(ry, ry), _dot(rx, ry)
    mx, my = sx / n, sy / n
    vx, vy = sxx - n * mx * mx, syy - n * my * my
    if vx <= 0 or vy <= 0:
        return _NAN
    return float(np.clip((sxy - n * mx * my) / math.sqrt(vx * vy), -1.0, 1.0))


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


def compute_stats(pred: np.ndarray, act: np.ndarray) -> SlippageStats:
    """All moment-based figures for paired arrays (same length); see the module docstring.

    One centring pass per array and four sums of products; the deviations of (p - a) reuse the
    centred p array, so no extra array is built.
    """
    n = int(pred.shape[0])
    if n == 0:
        return EMPTY_STATS
    mp, ma = float(pred.mean()), float(act.mean())
    dp = pred - mp
    da = act - ma
    spp = _dot(dp, dp)
    saa = _dot(da, da)
    spa = _dot(dp, da)
    dp -= da  # (p - a) minus its mean, in place: spp - 2 spa + saa cancels badly when p ~ a
    sdd = _dot(dp, dp)
    del dp, da
    bias = mp - ma
    rmse = math.sqrt(sdd / n + bias * bias)
    if n >= 2:
        half = _t975(n - 1) * math.sqrt(sdd / (n - 1)) / math.sqrt(n)
        lo, hi = bias - half, bias + half
    else:
        lo = hi = _NAN
    pearson = float(np.clip(spa / math.sqrt(spp * saa), -1.0, 1.0)) if spp > 0 and saa > 0 else _NAN
    slope = spa / spp if spp > 0 else _NAN
    intercept = ma - slope * mp if spp > 0 else _NAN
    pess = ma / mp if mp != 0 else _NAN
    return SlippageStats(mp, ma, bias, rmse, pearson, slope, intercept, lo, hi, pess)


def spearman(x: np.ndarray, y: np.ndarray, *, parallel: bool = True) -> float:
    """Spearman's rho (average ranks for ties); the two rankings run in two threads."""
    if x.shape[0] < 2:
        return _NAN
    if parallel:
        with ThreadPoolExecutor(max_workers=2) as pool:  # numpy's sort releases the GIL
            fx = pool.submit(average_ranks, x)
            ry = average_ranks(y)
            rx = fx.result()
    else:
        rx, ry = average_ranks(x), average_ranks(y)
    return _rank_pearson(rx, ry)


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
    pred, act, mid = triples[:, 0], triples[:, 1], triples[:, 2]
    n = int(triples.shape[0])
    price = compute_stats(pred, act)
    pred_bps = pred / mid
    pred_bps *= 10_000.0
    act_bps = act / mid
    act_bps *= 10_000.0
    bps = compute_stats(pred_bps, act_bps)
    rho = spearman(pred_bps, act_bps, parallel=n >= 50_000)
    verdict, reason = verdict_for(n, bps, thresholds)
    return ReconciliationReport(symbol, n, n_delayed, verdict, reason, thresholds, price, bps, rho)


# --------------------------------------------------------------------------- the reconciler


class SlippageReconciler:
    """Reads the journal's slippage blocks and reports predicted vs actual slippage."""

    def __init__(self, conn: aiosqlite.Connection, thresholds: CalibrationThresholds | None = None) -> None:
        self._conn = conn
        self.thresholds = thresholds or CalibrationThresholds()

    async def _blocks(self, symbol: str | None) -> tuple[np.ndarray, int]:
        """The live triples as an (n, 3) float64 array and the number of delayed fills: the packed
        blocks in one pass, then the journal's unpacked tail (``fills`` rows above the fold mark,
        fewer than ``BLOCK_FILLS``), in one call on the DB thread (no journal write can land between)."""
        where = "" if symbol is None else " WHERE symbol = ?"
        tail_where = "" if symbol is None else " AND +symbol = ?"  # '+': walk the id range, not the symbol index
        args: tuple[Any, ...] = () if symbol is None else (symbol,)

        def read(db: Any) -> tuple[np.ndarray, int]:
            try:
                row = db.execute("SELECT folded_through_id FROM fill_slippage_mark WHERE singleton = 0").fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    raise RuntimeError("table fill_slippage_mark is missing: the store needs migration "
                                       "v005_fill_perf (hydra_engine/store/migrations)") from exc
                raise
            mark = int(row[0]) if row else 0
            tail = bytearray()
            n_delayed = 0
            pack = _TRIPLE.pack
            for dtp, p, a, m in db.execute(
                    "SELECT data_type, predicted_slippage, actual_slippage, arrival_mid FROM fills WHERE id > ? "
                    "AND predicted_slippage IS NOT NULL AND actual_slippage IS NOT NULL "
                    f"AND arrival_mid IS NOT NULL{tail_where} ORDER BY id", (mark, *args)):
                if dtp == "live":
                    tail += pack(p, a, m)
                else:
                    n_delayed += 1
            # exact size first (cheap: no blob is read), so the blobs are copied once into one
            # preallocated buffer instead of a growing one (which would double the peak memory)
            sizes = dict(db.execute(
                f"SELECT data_type, COALESCE(SUM(n_fills), 0) FROM fill_slippage_blocks{where} GROUP BY data_type",
                args).fetchall())
            n_delayed += int(sizes.get("delayed", 0))
            packed = 24 * int(sizes.get("live", 0))
            buf = bytearray(packed + len(tail))
            view = memoryview(buf)
            pos = 0
            for dtp, n, data in db.execute(
                    f"SELECT data_type, n_fills, data FROM fill_slippage_blocks{where}", args):
                if dtp != "live":
                    continue
                k = len(data)
                if k != 24 * n or pos + k > packed:
                    raise ValueError("fill_slippage_blocks is inconsistent (n_fills does not match the "
                                     "blob): run FillJournal.rebuild_blocks()")
                view[pos:pos + k] = data
                pos += k
            if pos != packed:
                raise ValueError("fill_slippage_blocks is inconsistent (n_fills does not match the blobs): "
                                 "run FillJournal.rebuild_blocks()")
            view[pos:] = tail
            view.release()
            return np.frombuffer(buf, dtype="<f8").reshape(-1, 3), n_delayed

        run = getattr(self._conn, "_execute", None)
        if not callable(run):
            raise TypeError("SlippageReconciler needs an aiosqlite.Connection (aiosqlite >=0.20,<0.23)")
        return await run(lambda: read(self._conn._conn))  # noqa: SLF001 - aiosqlite's worker thread

    async def reconcile(self, symbol: str | None = None) -> ReconciliationReport:
        """Predicted vs actual over every live fill (of ``symbol`` if given)."""
        triples, n_delayed = await self._blocks(symbol)
        report = await asyncio.to_thread(analyse, triples, symbol=symbol, n_delayed=n_delayed,
                                         thresholds=self.thresholds)
        log.info("reconciler.report", symbol=symbol, n_fills=report.n_fills, verdict=report.verdict,
                 bias_bps=report.bps.bias, pessimism=report.bps.pessimism_multiplier,
                 delayed_excluded=n_delayed)
        return report
