"""A client's streaming subscriptions beyond quotes: keepUpToDate bars, 5-second real-time bars,
tick-by-tick data and market depth, all played from the intraday paths as the exchange clock moves.

Each kind is bounded per connection (IB's own limits where it has one: 3 depth books), each
stream keeps only a cursor (never the data it sent), and the whole set is dropped when the client
cancels or disconnects. A clock jump (lock-step days) delivers at most ``MAX_CATCH_UP`` messages
per stream: the most recent ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import bars as B
from . import messages as M
from .calendar import liquid_bounds
from .datafeed import Resolved
from .market_depth import Level, book
from .market_history import HistoryService

UTC = dt.timezone.utc
MAX_CATCH_UP = 1000
"""Most bars or ticks one stream sends for one step of the clock."""
RTB_SECONDS = 5
LIMITS = {"bars": 50, "realTimeBars": 50, "tickByTick": 10, "mktDepth": 3}
"""Simultaneous streams of each kind per connection."""
LIMIT_ERRORS = {
    "bars": (162, "Historical Market Data Service error message:more than 50 simultaneous keepUpToDate requests"),
    "realTimeBars": (420, "Invalid Real-time Query: more than 50 simultaneous real-time bar requests"),
    "tickByTick": (10190, "Max number of tick-by-tick requests has been reached."),
    "mktDepth": (309, "Max number (3) of market depth requests has been reached."),
}
TICK_TYPES = {"Last": 1, "AllLast": 2, "BidAsk": 3, "MidPoint": 4}


@dataclass(slots=True)
class BarStream:
    """keepUpToDate: the last bar sent (its start, or its day) and its values."""

    req_id: int
    resolved: Resolved
    bar_size: B.BarSize
    what: str
    use_rth: bool
    format_date: int
    last_start: int
    """Epoch second of the last intraday bar sent, or the ordinal of the last daily bar's day."""
    last_row: tuple = ()


@dataclass(slots=True)
class RealTimeBarStream:
    req_id: int
    resolved: Resolved
    what: str
    use_rth: bool
    next_start: int
    """Epoch second of the next 5-second bar to send."""


@dataclass(slots=True)
class TickStream:
    req_id: int
    resolved: Resolved
    tick_type: int
    last_print: int
    """Epoch second of the last print sent."""
    last_quote: tuple = ()


@dataclass(slots=True)
class DepthStream:
    req_id: int
    resolved: Resolved
    rows: int
    smart: bool
    asks: list[Level] = field(default_factory=list)
    bids: list[Level] = field(default_factory=list)


class Streams:
    """One connection's streams; ``refresh(now)`` plays each forward to ``now``."""

    def __init__(self, history: HistoryService, send: Callable[[M.Fields], None], version: Callable[[], int]) -> None:
        self.history = history
        self._send = send
        self._version = version
        self.kinds: dict[str, dict[int, object]] = {k: {} for k in LIMITS}

    def __bool__(self) -> bool:
        return any(self.kinds.values())

    def count(self) -> int:
        return sum(len(v) for v in self.kinds.values())

    def full(self, kind: str) -> tuple[int, str] | None:
        """The error to refuse one more stream of ``kind`` with, if its limit is reached."""
        return LIMIT_ERRORS[kind] if len(self.kinds[kind]) >= LIMITS[kind] else None

    def add(self, kind: str, req_id: int, stream: object) -> None:
        self.kinds[kind][req_id] = stream

    def cancel(self, kind: str, req_id: int) -> bool:
        return self.kinds.get(kind, {}).pop(req_id, None) is not None

    def clear(self) -> None:
        for v in self.kinds.values():
            v.clear()

    # ----- playing forward ----------------------------------------------------------------
    def refresh(self, now: dt.datetime) -> None:
        for s in list(self.kinds["bars"].values()):
            assert isinstance(s, BarStream)
            self._bars(s, now)
        for r in list(self.kinds["realTimeBars"].values()):
            assert isinstance(r, RealTimeBarStream)
            self._real_time(r, now)
        for t in list(self.kinds["tickByTick"].values()):
            assert isinstance(t, TickStream)
            self._ticks(t, now)
        for d in list(self.kinds["mktDepth"].values()):
            assert isinstance(d, DepthStream)
            self.depth(d, now, first=False)

    def refresh_one(self, s: BarStream, now: dt.datetime) -> None:
        """Play one keepUpToDate stream now (its in-progress bar right after the first answer)."""
        self._bars(s, now)

    def _sessions(self, r: Resolved, since: int, now: dt.datetime) -> list[B.SessionSeries]:
        """Sessions of ``r`` overlapping (since, now], minutes printed by ``now``."""
        feed = self.history.feed
        t0 = dt.datetime.fromtimestamp(since, UTC)
        out = []
        d = feed.trade_date(r.spec.symbol, t0)
        last = feed.trade_date(r.spec.symbol, now)
        while d <= last:
            b = feed.bounds(r.spec.symbol, d)
            if b is not None and b[1] > t0 and b[0] <= now:
                s = self.history.session_series(r, d)
                if s is not None:
                    out.append(B.printed_until(s, now))
            d += dt.timedelta(days=1)
        return out

    def _bars(self, s: BarStream, now: dt.datetime) -> None:
        r = s.resolved
        tz = B.exchange_zone(r.spec)
        if s.bar_size.intraday:
            series = []
            for x in self._sessions(r, s.last_start, now):
                if s.use_rth:
                    x = B.rth_only(x, r.spec)
                series.append(x.select(x.t >= s.last_start))
            got = B.intraday_bars(series, s.bar_size.seconds, s.what, tz)
        else:
            since = dt.datetime.combine(dt.date.fromordinal(s.last_start), dt.time(), UTC)
            if r.sec_type == "CONTFUT":
                return  # back-adjusted history: only a new request shows new CONTFUT bars
            got = B.period_bars(self._sessions(r, int(since.timestamp()), now), "D", s.what)
            got = [b for b in got if b.day is not None and b.day.toordinal() >= s.last_start]
        for b in got[-MAX_CATCH_UP:]:
            row = (B.bar_date(b, s.format_date, tz, r.spec.hours.time_zone), b.open, b.high, b.low, b.close, b.wap,
                   b.volume, b.count)  # fmt: skip
            key = int(b.start.timestamp()) if b.start is not None else (b.day.toordinal() if b.day else 0)
            if key == s.last_start and row == s.last_row:
                continue
            date, o, h, lo, c, wap, vol, n = row
            self._send(M.historical_data_update(s.req_id, n, date, o, h, lo, c, wap, vol))
            s.last_start, s.last_row = key, row

    def _real_time(self, r: RealTimeBarStream, now: dt.datetime) -> None:
        end = int(now.timestamp()) // RTB_SECONDS * RTB_SECONDS  # bars ending at or before now
        if end <= r.next_start:
            return
        start = max(r.next_start, end - MAX_CATCH_UP * RTB_SECONDS)
        for s in self._sessions(r.resolved, start, now):
            if r.use_rth:
                s = B.rth_only(s, r.resolved.spec)
            if not len(s.t):
                continue
            lo = max(start, int(s.t[0]))
            lo += (-lo) % RTB_SECONDS
            closes = liquid_bounds(r.resolved.spec.hours, s.day)[1] if r.use_rth else s.path.close_utc
            hi = min(end, int(closes.timestamp()))
            if hi <= lo:
                continue
            b = np.arange(lo, hi, RTB_SECONDS, dtype=np.int64)
            i = np.searchsorted(s.t, b, side="right") - 1  # the minute each bar lies in
            printed = (b - s.t[i]) == B.PRINT_OFFSET_S  # the minute's print falls in this bar
            shown = np.where((b - s.t[i]) >= B.PRINT_OFFSET_S, i, np.maximum(i - 1, 0))
            for k in range(len(b)):
                j = int(shown[k])
                if r.what == "TRADES":
                    p = float(s.price[j])
                    vol = int(s.volume[int(i[k])]) if printed[k] else 0
                    self._send(M.real_time_bar(r.req_id, int(b[k]), p, p, p, p, vol, p, 1 if vol else 0))
                    continue
                bid, ask = float(s.bid[j]), float(s.ask[j])
                v = {"MIDPOINT": round((bid + ask) / 2.0, 8), "BID": bid, "ASK": ask}[r.what]
                self._send(M.real_time_bar(r.req_id, int(b[k]), v, v, v, v, -1, -1.0, -1))
        r.next_start = end

    def _ticks(self, t: TickStream, now: dt.datetime) -> None:
        rows = self.tick_rows(t, t.last_print, now)
        for row in rows[-MAX_CATCH_UP:]:
            self.send_tick(t, row)
        t.last_print = max(t.last_print, int(now.timestamp()))

    def tick_rows(self, t: TickStream, since: int, now: dt.datetime) -> list[tuple]:
        """Prints after ``since`` up to ``now`` as (time, index, series)."""
        out = []
        for s in self._sessions(t.resolved, since, now):
            for i in range(len(s.t)):
                pt = B.print_time(s, i)
                if pt > since and (t.tick_type > 2 or s.volume[i] > 0):
                    out.append((pt, i, s))
        return out

    def send_tick(self, t: TickStream, row: tuple) -> None:
        pt, i, s = row
        if t.tick_type in (1, 2):
            self._send(M.tick_by_tick_last(t.req_id, t.tick_type, pt, float(s.price[i]), int(s.volume[i]),
                                           t.resolved.spec.exchange))  # fmt: skip
        elif t.tick_type == 4:
            self._send(M.tick_by_tick_midpoint(t.req_id, pt, round(float(s.bid[i] + s.ask[i]) / 2.0, 8)))
        else:
            q = self.history.feed.u.quote(t.resolved.month.con_id, dt.datetime.fromtimestamp(pt, UTC))
            quote = (float(s.bid[i]), float(s.ask[i]), int(q.bid_size), int(q.ask_size))
            if quote != t.last_quote:
                self._send(M.tick_by_tick_bid_ask(t.req_id, pt, *quote))
                t.last_quote = quote

    def depth(self, d: DepthStream, now: dt.datetime, first: bool) -> None:
        """Send the book (inserts the first time, then updates of the rows that changed)."""
        r = d.resolved
        q = self.history.feed.u.quote(r.month.con_id, now)
        asks, bids = book(q, r.month.con_id, r.spec.min_tick, d.rows, now)
        for side, new, old in ((0, asks, d.asks), (1, bids, d.bids)):
            for pos, (price, size) in enumerate(new):
                if not first and pos < len(old) and old[pos] == (price, size):
                    continue
                op = 0 if first or pos >= len(old) else 1
                if d.smart:
                    self._send(M.market_depth_l2(d.req_id, pos, r.spec.exchange, op, side, price, size, True,
                                                 self._version()))  # fmt: skip
                else:
                    self._send(M.market_depth(d.req_id, pos, op, side, price, size))
            for pos in range(len(new), len(old)):  # a level gone (a bid cannot go below zero)
                self._send(M.market_depth(d.req_id, pos, 2, side, old[pos][0], 0))
        d.asks, d.bids = asks, bids
