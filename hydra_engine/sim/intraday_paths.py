"""Intraday paths: a minute-by-minute trade price and volume for one session of one month.

A path is a Brownian bridge from the day's open to its close, bent by a monotone piecewise-linear
map so that its maximum is exactly the day's high and its minimum exactly the low; prices sit on
the tick grid. Volume follows a U-shape inside liquid hours and a trickle outside. Everything is
a pure function of (seed, conId, trade date, the daily bar), so paths are generated lazily and
only a few are cached.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from hydra_engine.sim.scenarios import stream_seed
from hydra_engine.sim.term_structure import round_to_tick

STEP_S = 60
"""Path resolution in seconds."""
PRINT_OFFSET_S = 30
"""Each step prints this long after its minute starts, so an order resting at the open (its
window starting exactly at the open) still takes part in the first print."""


@dataclass(frozen=True, slots=True, eq=False)
class IntradayPath:
    """Trade prices and cumulative volume per step; step i covers [open + i*STEP_S, +STEP_S) and
    prints at ``step_time(i)``."""

    con_id: int
    day: dt.date
    open_utc: dt.datetime
    close_utc: dt.datetime
    price: np.ndarray
    """float64 on the tick grid; price[0] is the open, price[-1] the close."""
    cum_volume: np.ndarray
    """int64 contracts traded up to the end of each step; the last equals the day's volume."""
    fill_noise: np.ndarray
    """Standard normal per step: the fill model's price noise (so fills are split-invariant)."""
    queue_u: np.ndarray
    """Uniform per step: the fill model's queue draw for limits resting at the traded price."""
    touch_z: np.ndarray
    """Standard normal per step: scatter of the displayed touch size."""

    @property
    def n_steps(self) -> int:
        return len(self.price)

    def step_time(self, i: int) -> dt.datetime:
        """Time step ``i`` prints: the middle of its minute (step 0 prints 30 s after the open)."""
        return self.open_utc + dt.timedelta(seconds=STEP_S * i + PRINT_OFFSET_S)

    def last_step_at_or_before(self, t: dt.datetime) -> int:
        """Index of the last step printed at or before ``t`` (-1 before the first print)."""
        secs = (t - self.open_utc).total_seconds() - PRINT_OFFSET_S
        if secs < 0:
            return -1
        return min(int(secs // STEP_S), self.n_steps - 1)

    def first_step_after(self, t: dt.datetime) -> int:
        """Index of the first step printing strictly after ``t`` (``n_steps`` if none)."""
        return self.last_step_at_or_before(t) + 1


def _bend(raw: np.ndarray, lo_oc: float, hi_oc: float, low: float, high: float) -> np.ndarray:
    """Monotone map fixing [lo_oc, hi_oc] and sending raw's extremes to ``low`` and ``high``."""
    out = raw.copy()
    xmax, xmin = raw.max(), raw.min()
    up = raw > hi_oc
    if high > hi_oc and xmax > hi_oc:
        out[up] = hi_oc + (raw[up] - hi_oc) * (high - hi_oc) / (xmax - hi_oc)
    else:
        out[up] = hi_oc
    dn = raw < lo_oc
    if low < lo_oc and xmin < lo_oc:
        out[dn] = lo_oc - (lo_oc - raw[dn]) * (lo_oc - low) / (lo_oc - xmin)
    else:
        out[dn] = lo_oc
    return out


def _bump(raw: np.ndarray, rng: np.random.Generator, level: float, up: bool) -> None:
    """Make sure ``raw`` leaves [.., level] (or [level, ..]) somewhere with a small tent."""
    n = len(raw)
    j = int(rng.integers(1, n - 1))
    width = max(2, n // 40)
    lo, hi = max(1, j - width), min(n - 1, j + width)
    span = np.arange(lo, hi)
    tent = 1.0 - np.abs(span - j) / (width + 1)
    eps = max(abs(level) * 1e-4, 1e-9)
    if up:
        raw[span] = np.maximum(raw[span], level + eps * tent)
    else:
        raw[span] = np.minimum(raw[span], level - eps * tent)


def build_path(
    seed: int,
    con_id: int,
    day: dt.date,
    bounds: tuple[dt.datetime, dt.datetime],
    liquid: tuple[dt.datetime, dt.datetime],
    ohlc: tuple[float, float, float, float],
    volume: int,
    tick: float,
) -> IntradayPath:
    """Generate the session path of ``con_id`` on ``day`` consistent with the daily ``ohlc``."""
    open_utc, close_utc = bounds
    n = max(2, int((close_utc - open_utc).total_seconds() // STEP_S))
    o, h, l, c = ohlc
    rng = np.random.default_rng(stream_seed(seed, "path", str(con_id), day.isoformat()))
    w = np.concatenate([[0.0], np.cumsum(rng.standard_normal(n - 1))])
    frac = np.linspace(0.0, 1.0, n)
    bridge = w - frac * w[-1]
    spread = np.ptp(bridge)
    scale = (h - l) / spread if spread > 0 else 0.0
    raw = o + (c - o) * frac + bridge * scale
    raw[0], raw[-1] = o, c
    lo_oc, hi_oc = min(o, c), max(o, c)
    if h > hi_oc and raw.max() <= hi_oc:
        _bump(raw, rng, hi_oc, up=True)
    if l < lo_oc and raw.min() >= lo_oc:
        _bump(raw, rng, lo_oc, up=False)
    price = round_to_tick(_bend(raw, lo_oc, hi_oc, l, h), tick)
    price[0], price[-1] = o, c
    # Volume: U-shaped inside liquid hours, a trickle outside, gamma noise per minute.
    times = np.arange(n) * STEP_S
    liq_start = (liquid[0] - open_utc).total_seconds()
    liq_end = (liquid[1] - open_utc).total_seconds()
    inside = (times >= liq_start) & (times < liq_end)
    weights = np.full(n, 0.06)
    if inside.any() and liq_end > liq_start:
        pos = (times[inside] - liq_start) / (liq_end - liq_start)
        weights[inside] = 1.0 + 2.5 * (2.0 * pos - 1.0) ** 2
    weights *= rng.gamma(2.0, 0.5, n)
    cum = np.floor(np.cumsum(weights) / weights.sum() * volume).astype(np.int64)
    cum[-1] = volume
    draws = np.random.default_rng(stream_seed(seed, "fill-draws", str(con_id), day.isoformat()))
    return IntradayPath(con_id, day, open_utc, close_utc, price, cum, draws.standard_normal(n),
                        draws.random(n), draws.standard_normal(n))


class PathCache:
    """A small LRU of intraday paths (each ~20 kB), keyed by (conId, trade date)."""

    def __init__(self, capacity: int = 32) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[int, dt.date], IntradayPath] = OrderedDict()

    def get(self, key: tuple[int, dt.date]) -> IntradayPath | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, path: IntradayPath) -> None:
        key = (path.con_id, path.day)
        self._items[key] = path
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
