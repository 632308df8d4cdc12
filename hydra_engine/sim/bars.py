"""Bars of the sizes IB serves, drawn from the same intraday paths the fills use.

Every intraday bar is an aggregate of one-minute path steps, so the bars of a session add up to
its daily bar exactly: the first minute's price is the open, the extremes are the day's high and
low, the last minute's price is the close and the minute volumes sum to the day's volume. Bars
are aligned to multiples of their length from local midnight in the exchange's time zone (an
hourly bar of a session opening at 08:30 runs 08:30-09:00, then 09:00-10:00), as IB's are.

``whatToShow``: TRADES from the path prints; MIDPOINT, BID and ASK from the touch around each
print (the same bid and ask ``quote`` shows); BID_ASK as IB defines it: open = time-average bid,
high = max ask, low = min bid, close = time-average ask. Quote bars carry volume, WAP and count
-1, as IB's do. Everything here is a pure function of the universe, safe to run in a thread.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Protocol, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from .calendar import liquid_bounds, zone
from .intraday_paths import PRINT_OFFSET_S, STEP_S, IntradayPath
from .market_types import ContractSpec, DailyBar, Quote

UTC = dt.timezone.utc

LEGAL_BAR_SIZES = (
    "1 secs, 5 secs, 10 secs, 15 secs, 30 secs, 1 min, 2 mins, 3 mins, 5 mins, 10 mins, 15 mins, "
    "20 mins, 30 mins, 1 hour, 2 hours, 3 hours, 4 hours, 8 hours, 1 day, 1 week, 1 month"
)
_INTRADAY_S = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30, "1 min": 60, "2 mins": 120,
    "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900, "20 mins": 1200, "30 mins": 1800,
    "1 hour": 3600, "2 hours": 7200, "3 hours": 10800, "4 hours": 14400, "8 hours": 28800,
}  # fmt: skip
_PERIODS = {"1 day": "D", "1 d": "D", "1 week": "W", "1w": "W", "1 month": "M", "1m": "M"}

TRADES_LIKE = ("TRADES",)
QUOTE_KINDS = ("MIDPOINT", "BID", "ASK", "BID_ASK")
SERVED_WHAT_TO_SHOW = TRADES_LIKE + QUOTE_KINDS
KNOWN_WHAT_TO_SHOW = SERVED_WHAT_TO_SHOW + (
    "ADJUSTED_LAST", "HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY", "REBATE_RATE", "FEE_RATE",
    "YIELD_BID", "YIELD_ASK", "YIELD_BID_ASK", "YIELD_LAST", "AGGTRADES", "SCHEDULE",
)  # fmt: skip
"""Every ``whatToShow`` IB knows; those outside ``SERVED_WHAT_TO_SHOW`` have no data for a future here."""

MAX_BARS = 20_000
"""A request that would return more bars than this is refused (IB: 'Time length exceed max')."""
MAX_PATH_SESSIONS = 400
"""Most sessions one request may read from the intraday paths (quote bars, ticks, histograms)."""

_DURATION = re.compile(r"^(\d+) ([SDWMY])$")
STEP_MINUTE = STEP_S
"""The paths' resolution, seconds: the finest bar served."""


@dataclass(frozen=True, slots=True)
class BarSize:
    text: str
    seconds: int
    """Length of an intraday bar; 0 for daily, weekly and monthly bars."""
    period: str
    """``I`` (intraday), ``D``, ``W`` or ``M``."""

    @property
    def intraday(self) -> bool:
        return self.period == "I"


def parse_bar_size(text: str) -> BarSize:
    """IB's ``barSizeSetting``; ValueError naming the legal ones otherwise."""
    key = " ".join(text.strip().lower().split())
    if key in _INTRADAY_S:
        return BarSize(key, _INTRADAY_S[key], "I")
    if key in _PERIODS:
        return BarSize(key, 0, _PERIODS[key])
    raise ValueError(f"Historical data bar size setting {text!r} is invalid. Legal ones are: {LEGAL_BAR_SIZES}")


def parse_duration(text: str) -> tuple[int, str]:
    """IB's ``durationStr``: an integer >= 1, one space, and S, D, W, M or Y (``'30 D'``)."""
    m = _DURATION.match(text.strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"duration {text!r} is invalid: expected an integer >= 1, a space and one of "
                         "S, D, W, M, Y (e.g. '60 S', '30 D', '13 W', '6 M', '1 Y')")  # fmt: skip
    return int(m.group(1)), m.group(2)


def duration_days(n: int, unit: str) -> float:
    """Calendar days a duration spans (D counts sessions elsewhere; here one day each)."""
    return {"S": n / 86_400, "D": float(n), "W": 7.0 * n, "M": 31.0 * n, "Y": 366.0 * n}[unit]


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar. ``start`` is UTC for intraday bars; daily, weekly and monthly bars carry ``day``."""

    start: dt.datetime | None
    day: dt.date | None
    open: float
    high: float
    low: float
    close: float
    volume: int
    wap: float
    count: int


class PathSource(Protocol):
    """What bars need of the market side (``SimMarketUniverse`` has it)."""

    def intraday_path(self, con_id: int, day: dt.date) -> IntradayPath: ...

    def quote(self, con_id: int, at: dt.datetime) -> Quote: ...


@dataclass(frozen=True, slots=True, eq=False)
class SessionSeries:
    """One session of one month, minute by minute: what bars, ticks and histograms are cut from."""

    day: dt.date
    t: np.ndarray
    """int64 epoch seconds at which each minute starts."""
    price: np.ndarray
    volume: np.ndarray
    """int64 contracts traded in each minute."""
    bid: np.ndarray
    ask: np.ndarray
    path: IntradayPath

    def select(self, mask: np.ndarray) -> SessionSeries:
        return SessionSeries(self.day, self.t[mask], self.price[mask], self.volume[mask], self.bid[mask],
                             self.ask[mask], self.path)  # fmt: skip


def touch_arrays(price: np.ndarray, spread_ticks: int, tick: float) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask around each price, exactly as ``fill_model.touch_prices`` places them."""
    decimals = max(0, -int(np.floor(np.log10(tick))) + 2)
    bid = np.round(np.floor((price - spread_ticks * tick / 2.0) / tick + 1e-9) * tick, decimals)
    ask = np.round(np.round((bid + spread_ticks * tick) / tick) * tick, decimals)
    return bid, ask


def session_series(src: PathSource, con_id: int, day: dt.date, tick: float) -> SessionSeries | None:
    """The minutes of ``con_id``'s session on ``day``; None when the month has no session then."""
    try:
        path = src.intraday_path(con_id, day)
    except (ValueError, KeyError):
        return None
    n = path.n_steps
    t = int(path.open_utc.timestamp()) + STEP_S * np.arange(n, dtype=np.int64)
    first = src.quote(con_id, path.step_time(0))
    spread_ticks = max(1, int(round((first.ask - first.bid) / tick)))
    bid, ask = touch_arrays(path.price, spread_ticks, tick)
    vol = np.diff(path.cum_volume, prepend=0)
    return SessionSeries(day, t, path.price, vol, bid, ask, path)


def printed_until(s: SessionSeries, end: dt.datetime) -> SessionSeries:
    """The minutes whose print (30 s into the minute) happened at or before ``end``."""
    k = s.path.last_step_at_or_before(end) + 1
    return s if k >= len(s.t) else s.select(np.arange(len(s.t)) < k)


def rth_only(s: SessionSeries, spec: ContractSpec) -> SessionSeries:
    """The minutes inside liquid (regular trading) hours."""
    lo, hi = liquid_bounds(spec.hours, s.day)
    return s.select((s.t >= int(lo.timestamp())) & (s.t < int(hi.timestamp())))


def _aggregate(groups: list[np.ndarray], s_price: np.ndarray, s_vol: np.ndarray, s_bid: np.ndarray,
               s_ask: np.ndarray, what: str) -> list[tuple[float, float, float, float, int, float, int]]:
    """(open, high, low, close, volume, wap, count) of each group of minute indices."""
    out = []
    for g in groups:
        if what == "TRADES":
            p, v = s_price[g], s_vol[g]
            vol = int(v.sum())
            wap = float((p * v).sum() / vol) if vol > 0 else float(p[-1])
            out.append((float(p[0]), float(p.max()), float(p.min()), float(p[-1]), vol, round(wap, 6),
                        int((v > 0).sum())))  # fmt: skip
            continue
        if what == "BID_ASK":
            b, a = s_bid[g], s_ask[g]
            o, h, lo, c = float(b.mean()), float(a.max()), float(b.min()), float(a.mean())
        else:
            x = {"MIDPOINT": (s_bid[g] + s_ask[g]) / 2.0, "BID": s_bid[g], "ASK": s_ask[g]}[what]
            o, h, lo, c = float(x[0]), float(x.max()), float(x.min()), float(x[-1])
        out.append((round(o, 8), round(h, 8), round(lo, 8), round(c, 8), -1, -1.0, -1))
    return out


def _concat(series: Sequence[SessionSeries]) -> tuple[np.ndarray, ...]:
    return (np.concatenate([s.t for s in series]), np.concatenate([s.price for s in series]),
            np.concatenate([s.volume for s in series]), np.concatenate([s.bid for s in series]),
            np.concatenate([s.ask for s in series]))  # fmt: skip


def intraday_bars(series: Sequence[SessionSeries], bar_seconds: int, what: str, tz: ZoneInfo) -> list[Bar]:
    """Bars of ``bar_seconds`` (a multiple of a minute) over the given minutes, local-midnight aligned."""
    series = [s for s in series if len(s.t)]
    if not series:
        return []
    t, price, vol, bid, ask = _concat(series)
    opened = dt.datetime.fromtimestamp(int(t[0]), UTC).astimezone(tz)
    offset = int(opened.utcoffset().total_seconds()) if opened.utcoffset() else 0
    key = (t + offset) // bar_seconds
    cut = np.flatnonzero(np.diff(key)) + 1
    groups = np.split(np.arange(len(t)), cut)
    rows = _aggregate(groups, price, vol, bid, ask, what)
    return [Bar(dt.datetime.fromtimestamp(int(key[g[0]]) * bar_seconds - offset, UTC), None, *row)
            for g, row in zip(groups, rows)]  # fmt: skip


def period_bars(series: Sequence[SessionSeries], period: str, what: str) -> list[Bar]:
    """Daily, weekly or monthly quote bars from whole sessions, labelled by their last session."""
    series = [s for s in series if len(s.t)]
    if not series:
        return []
    keys = [_period_key(s.day, period) for s in series]
    out: list[Bar] = []
    i = 0
    while i < len(series):
        j = i
        while j + 1 < len(series) and keys[j + 1] == keys[i]:
            j += 1
        t, price, vol, bid, ask = _concat(series[i : j + 1])
        [row] = _aggregate([np.arange(len(t))], price, vol, bid, ask, what)
        out.append(Bar(None, series[j].day, *row))
        i = j + 1
    return out


def _period_key(day: dt.date, period: str) -> tuple[int, int]:
    if period == "W":
        y, w, _ = day.isocalendar()
        return y, w
    if period == "M":
        return day.year, day.month
    return day.toordinal(), 0


def group_daily(bars: Sequence[DailyBar], period: str) -> list[Bar]:
    """TRADES bars of a week or month from the daily bars, labelled by the last session's date."""
    out: list[Bar] = []
    i = 0
    while i < len(bars):
        key = _period_key(bars[i].date, period)
        j = i
        while j + 1 < len(bars) and _period_key(bars[j + 1].date, period) == key:
            j += 1
        grp = bars[i : j + 1]
        vol = sum(b.volume for b in grp)
        wap = sum(b.wap * b.volume for b in grp) / vol if vol else grp[-1].close
        out.append(Bar(None, grp[-1].date, grp[0].open, max(b.high for b in grp), min(b.low for b in grp),
                       grp[-1].close, vol, round(wap, 6), sum(b.bar_count for b in grp)))  # fmt: skip
        i = j + 1
    return out


def daily_as_bars(bars: Sequence[DailyBar]) -> list[Bar]:
    return [Bar(None, b.date, b.open, b.high, b.low, b.close, b.volume, b.wap, b.bar_count) for b in bars]


def bar_date(bar: Bar, format_date: int, tz: ZoneInfo, tz_name: str) -> str:
    """IB's bar time: ``YYYYMMDD`` for day bars; intraday ``YYYYMMDD HH:MM:SS <zone>`` in the
    exchange's zone (formatDate 1) or epoch seconds (formatDate 2)."""
    if bar.day is not None:
        return bar.day.strftime("%Y%m%d")
    assert bar.start is not None
    if format_date == 2:
        return str(int(bar.start.timestamp()))
    return f"{bar.start.astimezone(tz):%Y%m%d %H:%M:%S} {tz_name}"


def exchange_zone(spec: ContractSpec) -> ZoneInfo:
    return zone(spec.hours.time_zone)


def print_time(s: SessionSeries, i: int) -> int:
    """Epoch second of minute ``i``'s print."""
    return int(s.t[i]) + PRINT_OFFSET_S
