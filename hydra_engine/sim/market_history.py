"""Answers to the history requests: bars of every size, head timestamp, trading schedule,
histogram and historical ticks, all read from the daily series and the intraday paths.

``HistoryService`` computes; the client session turns its results into messages. A request the
exchange cannot serve raises ``HistoryRefusal`` with the error IB gives for it. The path-reading
methods may run in a worker thread (the universe's caches are locked), so the session calls them
through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from . import bars as B
from .calendar import liquid_bounds
from .datafeed import DataFeed, Resolved
from .market_types import ContractSpec

UTC = dt.timezone.utc
MAX_TICKS = 1000
"""IB's cap on ``numberOfTicks`` for historical ticks."""
TICK_SEARCH_SESSIONS = 10
"""How many sessions a historical-ticks request looks through for its ticks."""
_HISTOGRAM_PERIOD = re.compile(r"^(\d+) (day|days|week|weeks|month|months)$")


class HistoryRefusal(Exception):
    """A request IB would refuse: ``code`` and ``text`` are the error to send on its id."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


def _no_data(why: str) -> HistoryRefusal:
    return HistoryRefusal(162, f"Historical Market Data Service error message:{why}")


def _invalid(why: str) -> HistoryRefusal:
    return HistoryRefusal(321, f"Error validating request:-'{why}'")


@dataclass(frozen=True, slots=True)
class BarAnswer:
    rows: list[tuple[str, float, float, float, float, int, float, int]]
    start: str
    end: str
    bars: list[B.Bar]


@dataclass(frozen=True, slots=True)
class ScheduleAnswer:
    start: str
    end: str
    time_zone: str
    sessions: list[tuple[str, str, str]]


class HistoryService:
    """History computed on demand; the only state is a small cache of first-bar dates."""

    def __init__(self, feed: DataFeed) -> None:
        self.feed = feed
        self._first_day: dict[int, dt.date] = {}

    @property
    def paths(self) -> B.PathSource | None:
        u = self.feed.u
        return u if hasattr(u, "intraday_path") else None  # type: ignore[return-value]

    # ----- validation ---------------------------------------------------------------------
    @staticmethod
    def check_what_to_show(what: str) -> str:
        w = what.strip().upper()
        if w not in B.KNOWN_WHAT_TO_SHOW:
            raise _invalid(f"whatToShow {what!r} is invalid (accepted: {', '.join(B.KNOWN_WHAT_TO_SHOW)})")
        if w not in B.SERVED_WHAT_TO_SHOW:
            raise _no_data(f"No data of type {w} is available for futures on this exchange "
                           f"(served: {', '.join(B.SERVED_WHAT_TO_SHOW)})")  # fmt: skip
        return w

    # ----- bars ---------------------------------------------------------------------------
    def bars(self, r: Resolved, bar_size: B.BarSize, duration: tuple[int, str], what: str, end: dt.datetime,
             use_rth: bool, format_date: int) -> BarAnswer:  # fmt: skip
        """Bars ending at ``end`` (already capped at the exchange clock)."""
        spec = r.spec
        tz = B.exchange_zone(spec)
        if bar_size.intraday:
            got = self._intraday(r, bar_size, duration, what, end, use_rth)
        else:
            got = self._periodic(r, bar_size.period, duration, what, end)
        if not got:
            raise _no_data("HMDS query returned no data")
        rows = [(B.bar_date(b, format_date, tz, spec.hours.time_zone), b.open, b.high, b.low, b.close, b.volume,
                 b.wap, b.count) for b in got]  # fmt: skip
        first = got[0]
        start_s = (first.day.strftime("%Y%m%d") + " 00:00:00") if first.day else B.bar_date(first, 1, tz, spec.hours.time_zone)
        return BarAnswer(rows, start_s, end.astimezone(UTC).strftime("%Y%m%d %H:%M:%S"), got)

    def _periodic(self, r: Resolved, period: str, duration: tuple[int, str], what: str, end: dt.datetime) -> list[B.Bar]:
        end_day = self.feed.last_completed_day(r.spec.symbol, end)
        if end_day is None:
            return []
        n, unit = duration
        daily = self.feed.daily_bars(r, end_day, f"{n} {unit}")
        if what == "TRADES":
            return B.daily_as_bars(daily) if period == "D" else B.group_daily(daily, period)
        series = self._series_for_days(r, [b.date for b in daily])
        return B.period_bars(series, period, what)

    def _intraday(self, r: Resolved, bar_size: B.BarSize, duration: tuple[int, str], what: str,
                  end: dt.datetime, use_rth: bool) -> list[B.Bar]:  # fmt: skip
        if bar_size.seconds < B.STEP_MINUTE:
            raise _no_data(f"bar size {bar_size.text!r} is finer than the exchange's one-minute price paths "
                           "(smallest served: 1 min)")  # fmt: skip
        if r.sec_type == "CONTFUT":
            raise _no_data("intraday bars of a CONTFUT are not served: request the contract month")
        start, days = self._window(r.spec, duration, end)
        minutes_per_session = self._session_minutes(r.spec, days)
        if minutes_per_session * 60 // bar_size.seconds > B.MAX_BARS:
            raise _no_data(f"Time length exceed max: {len(days)} sessions of {bar_size.text} bars is more than "
                           f"{B.MAX_BARS} bars")  # fmt: skip
        series = []
        start_s = int(start.timestamp())
        for s in self._series_for_days(r, days):
            s = B.printed_until(s, end)
            if use_rth:
                s = B.rth_only(s, r.spec)
            series.append(s.select(s.t >= start_s))
        return B.intraday_bars(series, bar_size.seconds, what, B.exchange_zone(r.spec))

    def _session_minutes(self, spec: ContractSpec, days: list[dt.date]) -> int:
        total = 0
        for d in days:
            b = self.feed.bounds(spec.symbol, d)
            if b is not None:
                total += int((b[1] - b[0]).total_seconds() // 60)
        return total

    def _window(self, spec: ContractSpec, duration: tuple[int, str], end: dt.datetime) -> tuple[dt.datetime, list[dt.date]]:
        """Start of the window a duration covers back from ``end``, and the trade dates of the
        sessions inside it (oldest first). ``N D`` counts sessions, as IB does."""
        n, unit = duration
        sym = spec.symbol
        if unit == "D":
            days: list[dt.date] = []
            d = self.feed.trade_date(sym, end)
            guard = 0
            while len(days) < n and guard < n * 3 + 15:
                b = self.feed.bounds(sym, d)
                if b is not None and b[0] < end:
                    days.append(d)
                d -= dt.timedelta(days=1)
                guard += 1
            if not days:
                return end, []
            days.reverse()
            b0 = self.feed.bounds(sym, days[0])
            assert b0 is not None
            return b0[0], days
        start = end - dt.timedelta(days=B.duration_days(n, unit))
        if (end - start).days > B.MAX_PATH_SESSIONS * 7 // 5 + 10:
            raise _no_data(f"Time length exceed max: {n} {unit} of intraday bars")
        days = []
        d = start.date() - dt.timedelta(days=1)
        while d <= end.date() + dt.timedelta(days=1):
            b = self.feed.bounds(sym, d)
            if b is not None and b[1] > start and b[0] < end:
                days.append(d)
            d += dt.timedelta(days=1)
        return start, days

    def _series_for_days(self, r: Resolved, days: list[dt.date]) -> list[B.SessionSeries]:
        if r.sec_type == "CONTFUT":
            raise _no_data("quote bars, ticks and histograms of a CONTFUT are not served: request the contract month")
        src = self.paths
        if src is None:
            raise _no_data("this market universe has no intraday paths")
        if len(days) > B.MAX_PATH_SESSIONS:
            raise _no_data(f"Time length exceed max: {len(days)} sessions (at most {B.MAX_PATH_SESSIONS} "
                           "for data read from the intraday paths)")  # fmt: skip
        out = []
        for d in days:
            s = B.session_series(src, r.month.con_id, d, r.spec.min_tick)
            if s is not None:
                out.append(s)
        return out

    def session_series(self, r: Resolved, day: dt.date) -> B.SessionSeries | None:
        src = self.paths
        return B.session_series(src, r.month.con_id, day, r.spec.min_tick) if src is not None else None

    # ----- head timestamp and schedule ----------------------------------------------------
    def first_day(self, r: Resolved, now: dt.datetime) -> dt.date | None:
        key = r.month.con_id if r.sec_type == "FUT" else -r.month.con_id
        if key not in self._first_day:
            end = self.feed.last_completed_day(r.spec.symbol, now)
            if end is None:
                return None
            u = self.feed.u
            got = (u.continuous_bars(r.spec.symbol, end, 10**6) if r.sec_type == "CONTFUT"
                   else u.daily_bars(r.month.con_id, end, 10**6))  # fmt: skip
            if not got:
                return None
            self._first_day[key] = got[0].date
        return self._first_day[key]

    def head_timestamp(self, r: Resolved, now: dt.datetime, use_rth: bool, format_date: int) -> str:
        """Time of the first bar the exchange holds: its session's open (liquid open with useRTH)."""
        day = self.first_day(r, now)
        if day is None:
            raise _no_data("HMDS query returned no data")
        b = self.feed.bounds(r.spec.symbol, day)
        assert b is not None
        t = liquid_bounds(r.spec.hours, day)[0] if use_rth else b[0]
        return str(int(t.timestamp())) if format_date == 2 else t.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S")

    def schedule(self, r: Resolved, n_days: int, end: dt.datetime, use_rth: bool) -> ScheduleAnswer:
        """The trading sessions of the last ``n_days`` sessions up to ``end`` (IB's SCHEDULE)."""
        spec = r.spec
        tz = B.exchange_zone(spec)
        _, days = self._window(spec, (n_days, "D"), end)
        rows = []
        for d in days:
            b = liquid_bounds(spec.hours, d) if use_rth else self.feed.bounds(spec.symbol, d)
            assert b is not None
            rows.append((f"{b[0].astimezone(tz):%Y%m%d-%H:%M:%S}", f"{b[1].astimezone(tz):%Y%m%d-%H:%M:%S}",
                         d.strftime("%Y%m%d")))  # fmt: skip
        if not rows:
            raise _no_data("HMDS query returned no data")
        return ScheduleAnswer(rows[0][0], rows[-1][1], spec.hours.time_zone, rows)

    # ----- histogram ----------------------------------------------------------------------
    def histogram(self, r: Resolved, period: str, now: dt.datetime, use_rth: bool) -> list[tuple[float, int]]:
        """Contracts traded at each price over the last ``period`` ('3 days', '1 week', ...)."""
        m = _HISTOGRAM_PERIOD.match(" ".join(period.strip().lower().split()))
        if not m or int(m.group(1)) <= 0:
            raise _invalid(f"histogram period {period!r} is invalid (e.g. '3 days', '1 week', '2 months')")
        n, unit = int(m.group(1)), m.group(2)
        duration = (n, "D") if unit.startswith("day") else (n, "W" if unit.startswith("week") else "M")
        _, days = self._window(r.spec, duration, now)
        prices: list[np.ndarray] = []
        vols: list[np.ndarray] = []
        for s in self._series_for_days(r, days):
            s = B.printed_until(s, now)
            if use_rth:
                s = B.rth_only(s, r.spec)
            prices.append(s.price)
            vols.append(s.volume)
        if not prices:
            raise _no_data("HMDS query returned no data")
        p, v = np.concatenate(prices), np.concatenate(vols)
        levels, inv = np.unique(p, return_inverse=True)
        counts = np.bincount(inv, weights=v).astype(np.int64)
        return [(float(x), int(c)) for x, c in zip(levels, counts) if c > 0]

    # ----- historical ticks ---------------------------------------------------------------
    def historical_ticks(self, r: Resolved, start: dt.datetime | None, end: dt.datetime | None, n: int,
                         what: str, use_rth: bool, now: dt.datetime) -> list[tuple]:  # fmt: skip
        """Up to ``n`` ticks after ``start`` or before ``end`` (oldest first): TRADES rows
        (time, price, size, exchange), BID_ASK rows (time, bid, ask, bid size, ask size),
        MIDPOINT rows (time, mid)."""
        if (start is None) == (end is None):
            raise _invalid("exactly one of startDateTime and endDateTime must be given")
        n = max(1, min(n, MAX_TICKS))
        anchor = start or end
        assert anchor is not None
        spec = r.spec
        day = self.feed.trade_date(spec.symbol, min(anchor, now))
        step = dt.timedelta(days=1 if start is not None else -1)
        picked: list[tuple] = []
        for _ in range(TICK_SEARCH_SESSIONS * 3):
            if len(picked) >= n:
                break
            b = self.feed.bounds(spec.symbol, day)
            s = self.session_series(r, day) if b is not None and b[0] <= now else None
            if s is not None:
                rows = self._tick_rows(r, B.printed_until(s, now), what, use_rth)
                if start is not None:
                    picked += [x for x in rows if x[0] >= int(start.timestamp())]
                else:
                    picked = [x for x in rows if x[0] <= int(anchor.timestamp())] + picked
            day += step
        picked = picked[:n] if start is not None else picked[-n:]
        if what == "BID_ASK":  # displayed sizes only for the ticks sent (one quote each)
            u = self.feed.u
            sized = []
            for t, bid, ask in picked:
                q = u.quote(r.month.con_id, dt.datetime.fromtimestamp(t, UTC))
                sized.append((t, bid, ask, int(q.bid_size), int(q.ask_size)))
            picked = sized
        return picked

    def _tick_rows(self, r: Resolved, s: B.SessionSeries, what: str, use_rth: bool) -> list[tuple]:
        if use_rth:
            s = B.rth_only(s, r.spec)
        if what == "TRADES":
            return [(B.print_time(s, i), float(s.price[i]), int(s.volume[i]), r.spec.exchange)
                    for i in range(len(s.t)) if s.volume[i] > 0]  # fmt: skip
        if what == "MIDPOINT":
            return [(B.print_time(s, i), round(float(s.bid[i] + s.ask[i]) / 2.0, 8)) for i in range(len(s.t))]
        return [(B.print_time(s, i), float(s.bid[i]), float(s.ask[i])) for i in range(len(s.t))]
