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

Per market, in bps: every figure, the verdict and the pessimism multiplier are computed for each
market on its own (``ReconciliationReport.markets``), because price units do not add across markets
(CL in dollars, ZO in cents: a pooled price-unit multiplier of 0.70 hid CL's 7.4) and even a pooled
bps figure lets a cheap market hide an expensive one. A market's verdict: "insufficient data" below
``min_fills`` live fills; else "calibrated" when |bias| <= ``max_abs_bias_bps`` and the pessimism
multiplier (bps) is within [``pessimism_low``, ``pessimism_high``]; else "underestimates cost"
(actual above predicted) or "overestimates cost".

``reconcile(None)`` adds a POOLED line (``report.pooled``) in bps only: there is no pooled
price-unit figure (``report.price`` is NaN) and the pooled verdict is the markets' verdicts
combined (any market underestimating makes it "underestimates cost"), never a pooled statistic's.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import struct
from collections.abc import Sequence
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
class MarketReconciliation:
    """One market's reconciliation: every figure in price units (``price``) and bps (``bps``)."""

    symbol: str | None
    n_fills: int
    """Live fills used."""
    n_delayed_excluded: int
    verdict: str
    """In bps (see the module docstring)."""
    verdict_reason: str
    price: SlippageStats
    bps: SlippageStats
    spearman: float
    """Spearman's rank correlation of predicted vs actual, in bps; NaN below 2 fills or without variation."""

    @property
    def sufficient(self) -> bool:
        return self.verdict != VERDICT_INSUFFICIENT

    @property
    def calibrated(self) -> bool:
        return self.verdict == VERDICT_CALIBRATED

    @property
    def pessimism_multiplier(self) -> float:
        """Mean actual / mean predicted in bps: the factor this market's predictions need."""
        return self.bps.pessimism_multiplier


@dataclass(frozen=True, slots=True)
class PooledReconciliation:
    """All markets' fills together, in bps only (price units do not add across markets). For a
    glance; the verdicts and multipliers that count are the markets' own."""

    n_fills: int
    n_delayed_excluded: int
    n_markets: int
    bps: SlippageStats
    spearman: float

    @property
    def pessimism_multiplier(self) -> float:
        return self.bps.pessimism_multiplier


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    """The reconciler's answer: one ``MarketReconciliation`` per market in ``markets``.

    For one market (``reconcile("CL")``) the top-level fields are that market's and the shortcut
    properties (``bias``, ``pessimism_multiplier``, ...) are in price units, as before. For all
    markets (``reconcile()``, ``is_pooled``) ``price`` is NaN, ``bps`` and ``spearman`` are the
    pooled bps line, the shortcut properties are in bps, and ``verdict`` combines the markets'
    own verdicts (see ``combined_verdict``)."""

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
    markets: tuple[MarketReconciliation, ...] = ()
    pooled: PooledReconciliation | None = None
    """Set for the all-markets report only."""

    @property
    def is_pooled(self) -> bool:
        return self.pooled is not None

    def market(self, symbol: str) -> MarketReconciliation:
        for m in self.markets:
            if m.symbol == symbol:
                return m
        raise KeyError(f"no reconciliation for market {symbol!r} (have {[m.symbol for m in self.markets]})")

    @property
    def _headline(self) -> SlippageStats:
        """Price units for one market; bps for the pooled report (price units do not pool)."""
        return self.bps if self.pooled is not None else self.price

    @property
    def sufficient(self) -> bool:
        return self.verdict != VERDICT_INSUFFICIENT

    @property
    def calibrated(self) -> bool:
        return self.verdict == VERDICT_CALIBRATED

    @property
    def mean_predicted(self) -> float:
        return self._headline.mean_predicted

    @property
    def mean_actual(self) -> float:
        return self._headline.mean_actual

    @property
    def bias(self) -> float:
        return self._headline.bias

    @property
    def rmse(self) -> float:
        return self._headline.rmse

    @property
    def correlation(self) -> float:
        return self._headline.pearson

    @property
    def pearson(self) -> float:
        return self._headline.pearson

    @property
    def slope(self) -> float:
        return self._headline.slope

    @property
    def intercept(self) -> float:
        return self._headline.intercept

    @property
    def bias_ci(self) -> tuple[float, float]:
        h = self._headline
        return (h.bias_ci_low, h.bias_ci_high)

    @property
    def pessimism_multiplier(self) -> float:
        return self._headline.pessimism_multiplier


@dataclass(frozen=True, slots=True)
class MarketSegment:
    """Rows ``start:stop`` of the triples array are ``symbol``'s live fills."""

    symbol: str
    start: int
    stop: int
    n_delayed: int


# --------------------------------------------------------------------------- statistics


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (what Spearman needs), as float32 to halve the
    memory (exact for up to 2**23 values: integers and halves)."""
    return _ranks_from_order(x, np.argsort(x, kind="quicksort"))


def _ranks_from_order(x: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``average_ranks`` given ``order``, an argsort of ``x`` (so one sort can serve several rankings)."""
    n = x.shape[0]
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


def _pooled_and_segment_ranks(x: np.ndarray, bounds: Sequence[tuple[int, int]]
                              ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ranks of all of ``x`` and of each contiguous segment ``x[start:stop]`` from ONE sort: a
    segment's sorted order is the global order filtered to it, which a stable radix sort of the
    (16-bit) segment ids of the sorted positions yields in linear time."""
    order = np.argsort(x, kind="quicksort")
    pooled = _ranks_from_order(x, order)
    lengths = [stop - start for start, stop in bounds]
    seg_id = np.repeat(np.arange(len(bounds), dtype=np.uint16 if len(bounds) <= 65_535 else np.int32), lengths)
    grouped = order[np.argsort(seg_id[order], kind="stable")]
    del order, seg_id
    parts = []
    for start, stop in bounds:
        local = grouped[start:stop] - start
        parts.append(_ranks_from_order(x[start:stop], local))
    return pooled, parts


def segment_spearman(x: np.ndarray, y: np.ndarray, bounds: Sequence[tuple[int, int]], *,
                     parallel: bool = True) -> tuple[float, list[float]]:
    """Spearman's rho over all of ``x, y`` and over each contiguous segment, sorting each column
    once (the two columns in two threads)."""
    if parallel:
        with ThreadPoolExecutor(max_workers=2) as pool:  # numpy's sort releases the GIL
            fx = pool.submit(_pooled_and_segment_ranks, x, bounds)
            ry, ry_parts = _pooled_and_segment_ranks(y, bounds)
            rx, rx_parts = fx.result()
    else:
        (rx, rx_parts), (ry, ry_parts) = _pooled_and_segment_ranks(x, bounds), _pooled_and_segment_ranks(y, bounds)
    return _rank_pearson(rx, ry), [_rank_pearson(a, b) for a, b in zip(rx_parts, ry_parts, strict=True)]


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


def combined_verdict(markets: Sequence[MarketReconciliation]) -> tuple[str, str]:
    """The pooled verdict from the markets' own (bps) verdicts, so no market hides another: any
    underestimate wins, then any overestimate; calibrated only if every market with enough fills is."""
    judged = [m for m in markets if m.sufficient]
    if not judged:
        return VERDICT_INSUFFICIENT, ("no market has enough live fills" if markets else "no live fills")
    parts = [f"{m.symbol}: {m.verdict} (x{m.pessimism_multiplier:.2f}, bias {m.bps.bias:+.2f} bps)" for m in judged]
    parts += [f"{m.symbol}: {m.verdict}" for m in markets if not m.sufficient]
    verdicts = {m.verdict for m in judged}
    verdict = next(v for v in (VERDICT_UNDER, VERDICT_OVER, VERDICT_CALIBRATED) if v in verdicts)
    return verdict, "per market, bps: " + "; ".join(parts)


def _market(pred: np.ndarray, act: np.ndarray, pred_bps: np.ndarray, act_bps: np.ndarray, *, symbol: str | None,
            n_delayed: int, thresholds: CalibrationThresholds, rho: float | None = None) -> MarketReconciliation:
    n = int(pred.shape[0])
    bps = compute_stats(pred_bps, act_bps)
    verdict, reason = verdict_for(n, bps, thresholds)
    if rho is None:
        rho = spearman(pred_bps, act_bps, parallel=n >= 50_000)
    return MarketReconciliation(symbol, n, n_delayed, verdict, reason, compute_stats(pred, act), bps, rho)


def _to_bps(triples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, act, mid = triples[:, 0], triples[:, 1], triples[:, 2]
    pred_bps = pred / mid
    pred_bps *= 10_000.0
    act_bps = act / mid
    act_bps *= 10_000.0
    return pred_bps, act_bps


def analyse(triples: np.ndarray, *, symbol: str | None, n_delayed: int,
            thresholds: CalibrationThresholds) -> ReconciliationReport:
    """The one-market report for an (n, 3) array of (predicted, actual, arrival mid) rows (CPU: run
    in a thread); the top-level figures are that market's."""
    pred_bps, act_bps = _to_bps(triples)
    m = _market(triples[:, 0], triples[:, 1], pred_bps, act_bps, symbol=symbol, n_delayed=n_delayed,
                thresholds=thresholds)
    return ReconciliationReport(symbol, m.n_fills, n_delayed, m.verdict, m.verdict_reason, thresholds, m.price,
                                m.bps, m.spearman, (m,))


def analyse_markets(triples: np.ndarray, segments: Sequence[MarketSegment], *,
                    thresholds: CalibrationThresholds) -> ReconciliationReport:
    """The all-markets report: one line per segment (each market's rows are contiguous) and the
    pooled line in bps. The bps arrays are built once; the markets' figures use slices of them."""
    pred_bps, act_bps = _to_bps(triples)
    n = int(triples.shape[0])
    bounds = [(g.start, g.stop) for g in segments]
    rhos: Sequence[float | None]
    if len(segments) > 1:  # one sort per column serves the pooled and every market's ranks
        rho, rhos = segment_spearman(pred_bps, act_bps, bounds, parallel=n >= 50_000)
    else:
        rho, rhos = _NAN, [None] * len(segments)
    markets = tuple(
        _market(triples[a:b, 0], triples[a:b, 1], pred_bps[a:b], act_bps[a:b], symbol=g.symbol,
                n_delayed=g.n_delayed, thresholds=thresholds, rho=r)
        for g, (a, b), r in zip(segments, bounds, rhos, strict=True))
    n_delayed = sum(g.n_delayed for g in segments)
    if len(markets) == 1:  # one market: the pooled figures are its own, no second pass
        bps, rho = markets[0].bps, markets[0].spearman
    elif not markets:
        bps = EMPTY_STATS
    else:
        bps = compute_stats(pred_bps, act_bps)
    pooled = PooledReconciliation(n, n_delayed, len(markets), bps, rho)
    verdict, reason = combined_verdict(markets)
    return ReconciliationReport(None, n, n_delayed, verdict, reason, thresholds, EMPTY_STATS, bps, rho,
                                markets, pooled)


# --------------------------------------------------------------------------- the reconciler


class SlippageReconciler:
    """Reads the journal's slippage blocks and reports predicted vs actual slippage."""

    def __init__(self, conn: aiosqlite.Connection, thresholds: CalibrationThresholds | None = None) -> None:
        self._conn = conn
        self.thresholds = thresholds or CalibrationThresholds()

    async def _blocks(self, symbol: str | None) -> tuple[np.ndarray, list[MarketSegment]]:
        """The live triples as an (n, 3) float64 array, each market's rows contiguous (in symbol
        order), and one ``MarketSegment`` per market (with its delayed count): the packed blocks in
        one pass, then the journal's unpacked tail (``fills`` rows above the fold mark, fewer than
        ``BLOCK_FILLS``), in one call on the DB thread (no journal write can land between)."""
        where = "" if symbol is None else " WHERE symbol = ?"
        tail_where = "" if symbol is None else " AND +symbol = ?"  # '+': walk the id range, not the symbol index
        args: tuple[Any, ...] = () if symbol is None else (symbol,)

        def read(db: Any) -> tuple[np.ndarray, list[MarketSegment]]:
            try:
                row = db.execute("SELECT folded_through_id FROM fill_slippage_mark WHERE singleton = 0").fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    raise RuntimeError("table fill_slippage_mark is missing: the store needs migration "
                                       "v005_fill_perf (hydra_engine/store/migrations)") from exc
                raise
            mark = int(row[0]) if row else 0
            tails: dict[str, bytearray] = {}
            delayed: dict[str, int] = {}
            pack = _TRIPLE.pack
            for sym, dtp, p, a, m in db.execute(
                    "SELECT symbol, data_type, predicted_slippage, actual_slippage, arrival_mid FROM fills "
                    "WHERE id > ? AND predicted_slippage IS NOT NULL AND actual_slippage IS NOT NULL "
                    f"AND arrival_mid IS NOT NULL{tail_where} ORDER BY id", (mark, *args)):
                if dtp == "live":
                    tails.setdefault(sym, bytearray()).extend(pack(p, a, m))
                else:
                    delayed[sym] = delayed.get(sym, 0) + 1
            # exact sizes first (cheap: no blob is read), so the blobs are copied once into one
            # preallocated buffer, each market's into its own contiguous range
            packed: dict[str, int] = {}
            for sym, dtp, total in db.execute(
                    f"SELECT symbol, data_type, COALESCE(SUM(n_fills), 0) FROM fill_slippage_blocks{where} "
                    "GROUP BY symbol, data_type", args).fetchall():
                if dtp == "live":
                    packed[sym] = 24 * int(total)
                else:
                    delayed[sym] = delayed.get(sym, 0) + int(total)
            symbols = sorted(set(packed) | set(tails) | set(delayed))
            if symbol is not None and symbol not in symbols:
                symbols = [symbol]
            starts: dict[str, int] = {}
            pos = 0
            for sym in symbols:
                starts[sym] = pos
                pos += packed.get(sym, 0) + len(tails.get(sym, b""))
            buf = bytearray(pos)
            view = memoryview(buf)
            cursor = dict(starts)
            for sym, dtp, n, data in db.execute(
                    f"SELECT symbol, data_type, n_fills, data FROM fill_slippage_blocks{where}", args):
                if dtp != "live":
                    continue
                k, at = len(data), cursor[sym]
                if k != 24 * n or at + k > starts[sym] + packed[sym]:
                    raise ValueError("fill_slippage_blocks is inconsistent (n_fills does not match the "
                                     "blob): run FillJournal.rebuild_blocks()")
                view[at:at + k] = data
                cursor[sym] = at + k
            segments = []
            for sym in symbols:
                at = cursor[sym]
                if at != starts[sym] + packed.get(sym, 0):
                    raise ValueError("fill_slippage_blocks is inconsistent (n_fills does not match the blobs): "
                                     "run FillJournal.rebuild_blocks()")
                tail = tails.get(sym, b"")
                view[at:at + len(tail)] = tail
                segments.append(MarketSegment(sym, starts[sym] // 24, (at + len(tail)) // 24, delayed.get(sym, 0)))
            view.release()
            return np.frombuffer(buf, dtype="<f8").reshape(-1, 3), segments

        run = getattr(self._conn, "_execute", None)
        if not callable(run):
            raise TypeError("SlippageReconciler needs an aiosqlite.Connection (aiosqlite >=0.20,<0.23)")
        return await run(lambda: read(self._conn._conn))  # noqa: SLF001 - aiosqlite's worker thread

    async def reconcile(self, symbol: str | None = None) -> ReconciliationReport:
        """Predicted vs actual over every live fill of ``symbol``, or of every market (one line
        per market plus the pooled bps line) when ``symbol`` is None."""
        triples, segments = await self._blocks(symbol)
        if symbol is None:
            report = await asyncio.to_thread(analyse_markets, triples, segments, thresholds=self.thresholds)
        else:
            n_delayed = sum(g.n_delayed for g in segments)
            report = await asyncio.to_thread(analyse, triples, symbol=symbol, n_delayed=n_delayed,
                                             thresholds=self.thresholds)
        for m in report.markets:
            log.info("reconciler.market", symbol=m.symbol, n_fills=m.n_fills, verdict=m.verdict,
                     bias_bps=m.bps.bias, pessimism=m.pessimism_multiplier, delayed_excluded=m.n_delayed_excluded)
        log.info("reconciler.report", symbol=symbol, pooled=report.is_pooled, n_fills=report.n_fills,
                 verdict=report.verdict, bias_bps=report.bps.bias, pessimism_bps=report.bps.pessimism_multiplier,
                 delayed_excluded=report.n_delayed_excluded)
        return report
