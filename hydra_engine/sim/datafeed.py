"""Reference and market data served over the wire: contract lookup and details, daily bars,
quote ticks and historical-data pacing. Reads the market side only through ``MarketUniverse``."""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .market_types import ContractSpec, DailyBar, FutureMonth, MarketUniverse, Quote
from .bars import parse_duration as strict_duration
from .messages import ContractDetailsView, WireContract
from .reference_data import market_rule_id
from .requests import ContractReq

UTC = dt.timezone.utc
DELAYED_LAG = dt.timedelta(minutes=15)
"""Delayed market data (type 3/4) shows the book as it was this long ago."""

LIVE_PRICE_TICKS = {"bid": 1, "ask": 2, "last": 4, "high": 6, "low": 7, "close": 9, "open": 14}
DELAYED_PRICE_TICKS = {"bid": 66, "ask": 67, "last": 68, "high": 72, "low": 73, "close": 75, "open": 76}
LIVE_SIZE_TICKS = {"bid_size": 0, "ask_size": 3, "last_size": 5, "volume": 8}
DELAYED_SIZE_TICKS = {"bid_size": 69, "ask_size": 70, "last_size": 71, "volume": 74}
_SIZE_FOR_PRICE = {"bid": "bid_size", "ask": "ask_size", "last": "last_size"}

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Resolved:
    """A client's contract resolved to one product and (for FUT) one month."""

    spec: ContractSpec
    month: FutureMonth
    sec_type: str
    """``FUT`` or ``CONTFUT`` (CONTFUT carries the front month as IB does)."""

    def wire(self) -> WireContract:
        return wire_contract(self.spec, self.month, self.sec_type)


def wire_contract(spec: ContractSpec, month: FutureMonth, sec_type: str = "FUT") -> WireContract:
    return WireContract(
        month.con_id, spec.symbol, sec_type, month.last_trade_date.strftime("%Y%m%d"),
        spec.multiplier, spec.exchange, spec.currency, month.local_symbol, spec.trading_class,
    )  # fmt: skip


class DataFeed:
    """Stateless helpers over the universe plus a small cache of session bounds."""

    def __init__(self, universe: MarketUniverse) -> None:
        self.u = universe
        self._bounds: dict[tuple[str, dt.date], tuple[dt.datetime, dt.datetime] | None] = {}
        self._details: dict[tuple[int, str], ContractDetailsView] = {}
        self._hours_cache: dict[str, tuple[str, str]] = {}
        self._details_day: dt.date | None = None
        """Details and trading hours change with the date, so both caches hold one day only: a
        clock that plays thousands of days would otherwise keep every day's strings."""

    # ----- sessions -------------------------------------------------------------------------
    def bounds(self, symbol: str, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """UTC session bounds of trade date ``day``, None on a non-trading day (cached)."""
        key = (symbol, day)
        got = self._bounds.get(key, _MISSING)
        if got is _MISSING:  # read once, so a clear() from another thread cannot lose it
            got = self.u.session_bounds(symbol, day) if self.u.is_trading_day(symbol, day) else None
            if len(self._bounds) > 50_000:
                self._bounds.clear()
            self._bounds[key] = got
        return got  # type: ignore[return-value]

    def sessions_between(self, symbol: str, t0: dt.datetime, t1: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        """Sessions (open, close) overlapping (t0, t1], in order."""
        out = []
        d = t0.date() - dt.timedelta(days=2)
        last = t1.date() + dt.timedelta(days=2)
        while d <= last:
            b = self.bounds(symbol, d)
            if b is not None and b[1] > t0 and b[0] < t1:
                out.append(b)
            d += dt.timedelta(days=1)
        return out

    def session_at(self, symbol: str, t: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """The session containing ``t`` (open <= t < close), if any."""
        for d in (t.date() - dt.timedelta(days=1), t.date(), t.date() + dt.timedelta(days=1)):
            b = self.bounds(symbol, d)
            if b is not None and b[0] <= t < b[1]:
                return b
        return None

    def current_or_next_session(self, symbol: str, t: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        d = t.date() - dt.timedelta(days=1)
        for _ in range(20):
            b = self.bounds(symbol, d)
            if b is not None and b[1] > t:
                return b
            d += dt.timedelta(days=1)
        return None

    def last_completed_day(self, symbol: str, t: dt.datetime) -> dt.date | None:
        """Trade date of the last session whose close is at or before ``t``."""
        d = t.date() + dt.timedelta(days=1)
        for _ in range(30):
            b = self.bounds(symbol, d)
            if b is not None and b[1] <= t:
                return d
            d -= dt.timedelta(days=1)
        return None

    def trade_date(self, symbol: str, t: dt.datetime) -> dt.date:
        return self.u.trade_date(symbol, t)

    # ----- contracts ------------------------------------------------------------------------
    def _find_local(self, local_symbol: str, now: dt.datetime) -> FutureMonth | None:
        for spec in self.u.specs():
            for m in self.u.months(spec.symbol, now.date(), include_expired=True):
                if m.local_symbol == local_symbol:
                    return m
        return None

    def resolve(self, c: ContractReq, now: dt.datetime, include_expired: bool) -> list[Resolved]:
        """Every listed contract matching the request (front month first); empty when unknown."""
        sec = c.sec_type.upper()
        if sec not in ("", "FUT", "CONTFUT"):
            return []
        if c.con_id:
            m = self.u.month(c.con_id)
            if m is None:
                cont = getattr(self.u, "continuous_symbol", None)
                sym = cont(c.con_id) if cont else None
                spec = self.u.spec(sym) if sym else None
                months = self.u.months(sym, self.trade_date(sym, now)) if spec and sym else []
                return [Resolved(spec, months[0], "CONTFUT")] if (spec and months) else []
            spec = self.u.spec(m.symbol)
            if spec is None or (c.symbol and c.symbol != spec.symbol):
                return []
            return [Resolved(spec, m, "CONTFUT" if sec == "CONTFUT" else "FUT")]
        spec = self.u.spec(c.symbol) if c.symbol else None
        if spec is None and c.local_symbol:
            m = self._find_local(c.local_symbol, now)
            spec = self.u.spec(m.symbol) if m else None
        if spec is None:
            return []
        if c.exchange and c.exchange not in (spec.exchange, "SMART", "GLOBEX" if spec.exchange == "CME" else "-"):
            return []
        if c.currency and c.currency != spec.currency:
            return []
        if c.multiplier:
            try:
                if float(c.multiplier) != float(spec.multiplier):
                    return []
            except ValueError:
                return []
        if c.trading_class and c.trading_class != spec.trading_class:
            return []
        today = self.trade_date(spec.symbol, now)
        if sec == "CONTFUT":
            months = self.u.months(spec.symbol, today)
            return [Resolved(spec, months[0], "CONTFUT")] if months else []
        months = list(self.u.months(spec.symbol, today, include_expired=include_expired))
        if c.local_symbol:
            months = [m for m in months if m.local_symbol == c.local_symbol]
        ltd = c.last_trade_date_or_month
        if ltd:
            if len(ltd) == 6:
                months = [m for m in months if m.contract_month == ltd]
            else:
                months = [m for m in months if m.last_trade_date.strftime("%Y%m%d") == ltd[:8] or m.contract_month == ltd[:6]]
        if not include_expired and not ltd and not c.local_symbol:
            months = [m for m in months if m.last_trade_date >= today]
        return [Resolved(spec, m, "FUT") for m in months]

    def details(self, r: Resolved, now: dt.datetime) -> ContractDetailsView:
        if now.date() != self._details_day:
            self._details, self._hours_cache, self._details_day = {}, {}, now.date()
        details, hours = self._details, self._hours_cache  # one day's pair, even if another day clears
        key = (r.month.con_id, r.sec_type)
        view = details.get(key)
        if view is None:
            view = details[key] = self._build_details(r, now, hours)
        return view

    def _build_details(self, r: Resolved, now: dt.datetime, hours_today: dict[str, tuple[str, str]]) -> ContractDetailsView:
        spec, m = r.spec, r.month
        if spec.symbol not in hours_today:
            hours = getattr(self.u, "trading_hours", None)
            if hours is not None:
                hours_today[spec.symbol] = (hours(spec.symbol, now.date()), hours(spec.symbol, now.date(), True))
            else:
                hours_today[spec.symbol] = self._hours(spec, now)
        trading_s, liquid_s = hours_today[spec.symbol]
        return ContractDetailsView(
            contract=wire_contract(spec, m, r.sec_type),
            market_name=spec.trading_class,
            min_tick=spec.min_tick,
            long_name=spec.long_name,
            contract_month=m.contract_month,
            time_zone_id=spec.hours.time_zone,
            trading_hours=trading_s,
            liquid_hours=liquid_s,
            real_expiration_date=m.real_expiration_date.strftime("%Y%m%d"),
            valid_exchanges=spec.exchange,
            market_rule_ids=str(market_rule_id(spec.min_tick)),
        )

    def _hours(self, spec: ContractSpec, now: dt.datetime) -> tuple[str, str]:
        """IB tradingHours/liquidHours text for a universe that does not format them itself."""
        tz = ZoneInfo(spec.hours.time_zone)
        trading, liquid = [], []
        start = now.date() - dt.timedelta(days=1)
        for k in range(8):
            d = start + dt.timedelta(days=k)
            b = self.bounds(spec.symbol, d)
            if b is None:
                trading.append(f"{d:%Y%m%d}:CLOSED")
                liquid.append(f"{d:%Y%m%d}:CLOSED")
                continue
            o, c = b[0].astimezone(tz), b[1].astimezone(tz)
            trading.append(f"{o:%Y%m%d:%H%M}-{c:%Y%m%d:%H%M}")
            lo, lc = spec.hours.liquid_open, spec.hours.liquid_close
            lo_day = c.date() if lo < lc else c.date() - dt.timedelta(days=1)
            liquid.append(f"{lo_day:%Y%m%d}:{lo:%H%M}-{c.date():%Y%m%d}:{lc:%H%M}")
        return ";".join(trading), ";".join(liquid)

    # ----- historical data ------------------------------------------------------------------
    def daily_bars(self, r: Resolved, end_day: dt.date, duration: str) -> list[DailyBar]:
        """Completed daily bars ending at ``end_day`` covering ``duration`` (IB's ``N D/W/M/Y``)."""
        n, unit = parse_duration(duration)
        if unit == "D":
            count, since = n, None
        else:
            days = {"S": 1, "W": 7 * n, "M": 31 * n, "Y": 366 * n}[unit]
            if unit == "S":
                days = max(1, n // 86_400)
            count, since = days, end_day - dt.timedelta(days=days)
        if r.sec_type == "CONTFUT":
            bars = list(self.u.continuous_bars(r.spec.symbol, end_day, count))
        else:
            bars = list(self.u.daily_bars(r.month.con_id, end_day, count))
        bars = [b for b in bars if b.date <= end_day]
        if since is not None:
            bars = [b for b in bars if b.date > since]
        return bars[-count:] if unit == "D" else bars

    # ----- market data ----------------------------------------------------------------------
    def ticks(self, con_id: int, now: dt.datetime, delayed: bool) -> dict[str, float]:
        q: Quote = self.u.quote(con_id, now - DELAYED_LAG if delayed else now)
        return {
            "bid": q.bid, "ask": q.ask, "last": q.last, "high": q.high, "low": q.low,
            "close": q.close, "open": q.open, "bid_size": q.bid_size, "ask_size": q.ask_size,
            "last_size": q.last_size, "volume": q.volume,
        }  # fmt: skip

    def mark(self, con_id: int, now: dt.datetime) -> float | None:
        try:
            q = self.u.quote(con_id, now)
        except Exception:  # a mark is best effort: an unknown month values at cost
            return None
        if q.last > 0:
            return q.last
        if q.bid > 0 and q.ask > 0:
            return (q.bid + q.ask) / 2
        return q.close if q.close > 0 else None


def tick_messages(values: dict[str, float], previous: dict[str, float] | None, delayed: bool) -> list[tuple[str, int, float, float]]:
    """Changed values as ('price'|'size', tickType, price, size) in IB's order."""
    pt = DELAYED_PRICE_TICKS if delayed else LIVE_PRICE_TICKS
    st = DELAYED_SIZE_TICKS if delayed else LIVE_SIZE_TICKS
    out: list[tuple[str, int, float, float]] = []
    prev = previous or {}
    for name, tt in pt.items():
        v = values[name]
        if v is None or v <= 0:
            continue
        size_name = _SIZE_FOR_PRICE.get(name)
        size = values[size_name] if size_name else 0.0
        if prev.get(name) != v or (size_name and prev.get(size_name) != size):
            out.append(("price", tt, v, size))
    for name, tt in st.items():
        if name == "volume" and prev.get(name) != values[name]:
            out.append(("size", tt, 0.0, values[name]))
    return out


def parse_duration(s: str) -> tuple[int, str]:
    """IB's ``durationStr`` (``'30 D'``), validated as IB does; see ``bars.parse_duration``."""
    return strict_duration(s)


def parse_end(s: str, now: dt.datetime) -> dt.datetime:
    """IB endDateTime: empty (now), ``YYYYMMDD HH:MM:SS [zone]`` or ``YYYYMMDD-HH:MM:SS`` (UTC)."""
    s = s.strip()
    if not s:
        return now
    if "-" in s and len(s) >= 17 and s[8] == "-":
        return dt.datetime.strptime(s[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    parts = s.split()
    if len(parts) == 1 and len(parts[0]) == 8:
        return dt.datetime.strptime(parts[0], "%Y%m%d").replace(hour=23, minute=59, second=59, tzinfo=UTC)
    t = dt.datetime.strptime(parts[0] + parts[1], "%Y%m%d%H:%M:%S")
    zone = parts[2] if len(parts) > 2 else "UTC"
    return t.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


class Pacer:
    """IB's historical-data pacing rules, counted in simulated time (one per client session)."""

    def __init__(self) -> None:
        self._log: deque[tuple[dt.datetime, tuple, int]] = deque()

    def check(self, now: dt.datetime, key: tuple, con_id: int) -> str | None:
        """Record a request; the violated rule's description, or None when within limits."""
        while self._log and (now - self._log[0][0]).total_seconds() > 600:
            self._log.popleft()
        reason = None
        recent = list(self._log)
        if any(k == key and (now - t).total_seconds() < 15 for t, k, _ in recent):
            reason = "identical request within 15 seconds"
        elif sum(1 for t, _, c in recent if c == con_id and (now - t).total_seconds() < 2) >= 6:
            reason = "more than 6 requests for one contract within 2 seconds"
        elif len(recent) >= 60:
            reason = "more than 60 requests within 10 minutes"
        self._log.append((now, key, con_id))
        return reason
