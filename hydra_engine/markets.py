"""The user's markets and their decision calendar.

A ``MarketConfig`` says what HYDRA trades and when it decides: symbol, exchange, currency, the
decision time in the exchange's zone (after the close, so "today's bar" is complete), how many
trading days before the last trade date to roll, and per-market caps. Contract facts (expiries,
multiplier, tick, trading hours) come from the broker's contract details, as with real IB.

Holidays follow the US exchange rules (CME Group / ICE US): New Year's Day, Martin Luther King Jr.
Day, Presidents Day, Good Friday, Memorial Day, Juneteenth (from 2022), Independence Day, Labor
Day, Thanksgiving and Christmas; a Saturday holiday is observed on Friday and a Sunday one on
Monday, except that New Year's Day on a Saturday is not observed (as NYSE and CME do). On the
Monday holidays CME Globex opens an abbreviated session whose trades settle with the next day, so
no daily bar or decision carries that date. Ad-hoc closures (days of mourning) are not predicted.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Callable, Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hydra_engine.clock import UTC, ensure_utc

CALENDARS = ("US",)


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """One traded market. Times are local to ``time_zone``; caps are in contracts / fractions."""

    symbol: str
    exchange: str
    currency: str = "USD"
    decision_time: time = field(default=time(14, 0))
    """Local time of the daily decision, after the session's settlement."""
    time_zone: str = "America/Chicago"
    roll_days: int = field(default=5, metadata={"range": (0, 60)})
    """Trading days before the last trade date to roll (before first notice for physical delivery)."""
    max_contracts: int = field(default=2, metadata={"range": (0, 10_000)})
    """Largest absolute position in this market, contracts."""
    max_adv_fraction: float = field(default=0.01, metadata={"range": (0.0, 1.0)})
    """Largest order as a fraction of average daily volume."""
    session_close: time = field(default=time(16, 0))
    """Local time the daily session closes; a later instant belongs to the next trading date."""
    enabled: bool = True
    calendar: str = field(default="US", metadata={"choices": CALENDARS})
    description: str = ""
    model_group: str = ""
    """Name of the group of markets that share one champion (its agent heals on the group's first
    market); empty: the market has a champion of its own."""
    history: str = ""
    """Embedded exchange only: a daily OHLCV or close-only CSV that prices this market (path)."""

    def __post_init__(self) -> None:
        if not self.symbol or not self.symbol.replace("_", "").isalnum():
            raise ValueError(f"symbol {self.symbol!r}: must be letters/digits, e.g. 'CL'")
        if not self.exchange:
            raise ValueError(f"exchange for {self.symbol} must not be empty")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(f"currency {self.currency!r}: must be a 3-letter code such as 'USD'")
        try:
            _zone(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"time_zone {self.time_zone!r}: not a known IANA zone (e.g. 'America/Chicago')"
            ) from exc
        for name in ("decision_time", "session_close"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                raise ValueError(f"{name} must be a local time without zone, e.g. 14:00")

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.time_zone)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# Known markets (the embedded exchange lists the same products). Each decision sits after the
# session's close, so "today's bar" is complete and orders are worked in the next session:
# CME Globex energy and dairy close 16:00 CT; CBOT/MGEX grains 13:20 CT; CME lumber 15:05 CT;
# ICE US softs (IB exchange "NYBOT") 14:00 ET. roll_days counts trading days before the last trade
# date: physically delivered contracts roll before first notice, cash-settled ones just before expiry.
def _m(symbol: str, exchange: str, decision: time, close: time, roll: int, max_contracts: int,
       adv: float, description: str, zone: str = "America/Chicago") -> MarketConfig:
    return MarketConfig(symbol=symbol, exchange=exchange, currency="USD", decision_time=decision,
                        time_zone=zone, roll_days=roll, max_contracts=max_contracts, max_adv_fraction=adv,
                        session_close=close, description=description)


CATALOG: Mapping[str, MarketConfig] = {m.symbol: m for m in (
    _m("CL", "NYMEX", time(16, 15), time(16, 0), 5, 2, 0.001, "WTI crude oil (physical; roll before expiry)"),
    _m("ZO", "CBOT", time(14, 0), time(13, 20), 15, 2, 0.01, "Oats (thin; first notice ~2 weeks before expiry)"),
    _m("ZR", "CBOT", time(14, 0), time(13, 20), 15, 2, 0.01, "Rough rice (thin; roll before first notice)"),
    _m("MWE", "MGEX", time(14, 0), time(13, 20), 15, 2, 0.01, "Hard red spring wheat (roll before first notice)"),
    _m("LBR", "CME", time(15, 30), time(15, 5), 10, 1, 0.02, "Lumber (very thin; physical)"),
    _m("DC", "CME", time(16, 15), time(16, 0), 2, 1, 0.02, "Class III milk (cash-settled)"),
    _m("GNF", "CME", time(16, 15), time(16, 0), 2, 1, 0.02, "Nonfat dry milk (cash-settled, very thin)"),
    _m("CSC", "CME", time(16, 15), time(16, 0), 2, 1, 0.02, "Cash-settled cheese"),
    _m("DY", "CME", time(16, 15), time(16, 0), 2, 1, 0.02, "Dry whey (cash-settled, very thin)"),
    _m("OJ", "NYBOT", time(14, 30), time(14, 0), 3, 1, 0.02, "FCOJ-A (physical; roll before expiry)",
       zone="America/New_York"),
)}

DEFAULT_MARKETS: tuple[MarketConfig, ...] = (CATALOG["CL"], CATALOG["ZO"])
"""Markets traded when the configuration names none; both exist in the embedded exchange."""


def market_from_catalog(symbol: str, **changes: object) -> MarketConfig:
    """A catalogue market, optionally with some fields changed (validated again)."""
    try:
        base = CATALOG[symbol]
    except KeyError:
        raise KeyError(
            f"market {symbol!r} is not in the catalogue ({', '.join(sorted(CATALOG))}); "
            "give exchange, decision_time and time_zone explicitly"
        ) from None
    return replace(base, **changes) if changes else base  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Holidays by rule


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    d = date(year, month, 1)
    d += timedelta(days=(weekday - d.weekday()) % 7)
    return d + timedelta(weeks=n - 1)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    d = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous Meeus/Jones/Butcher computus)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(d: date, *, saturday_to_friday: bool = True) -> date | None:
    if d.weekday() == 5:
        return d - timedelta(days=1) if saturday_to_friday else None
    if d.weekday() == 6:
        return d + timedelta(days=1)
    return d


@functools.lru_cache(maxsize=256)
def us_exchange_holidays(year: int) -> frozenset[date]:
    """Full-day closures (no settlement) of US futures exchanges in ``year``, by rule."""
    days: set[date | None] = {
        _observed(date(year, 1, 1), saturday_to_friday=False),
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Presidents Day
        easter_sunday(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))
    # New Year's Day of next year falling on a Saturday is not observed on Dec 31 (rule above).
    return frozenset(d for d in days if d is not None)


def is_trading_day(market: MarketConfig, day: date) -> bool:
    """True when ``market``'s exchange holds a session that settles on ``day``."""
    if day.weekday() >= 5:
        return False
    return day not in us_exchange_holidays(day.year)


def next_trading_day(market: MarketConfig, day: date) -> date:
    """The first trading day strictly after ``day``."""
    d = day + timedelta(days=1)
    while not is_trading_day(market, d):
        d += timedelta(days=1)
    return d


def previous_trading_day(market: MarketConfig, day: date) -> date:
    """The last trading day strictly before ``day``."""
    d = day - timedelta(days=1)
    while not is_trading_day(market, d):
        d -= timedelta(days=1)
    return d


def trading_days(market: MarketConfig, start: date, end: date) -> Iterator[date]:
    """Trading days in ``[start, end]``, oldest first."""
    d = start
    while d <= end:
        if is_trading_day(market, d):
            yield d
        d += timedelta(days=1)


TradingCalendar = Callable[[date], bool]
"""A trading-day predicate: True when a session settles on the date."""


def weekdays(day: date) -> bool:
    """The calendar used where no market's is known: Monday to Friday."""
    return day.weekday() < 5


def trading_days_between(market: MarketConfig | TradingCalendar, earlier: date, later: date) -> int:
    """How many trading days lie in ``(earlier, later]``: 1 for consecutive sessions, 0 if same.

    ``market`` is a market (its exchange calendar) or any ``TradingCalendar`` (e.g. the union of
    the configured markets, ``any_market_trades``); the one count the engine uses everywhere."""
    if later <= earlier:
        return 0
    trades: TradingCalendar = market if callable(market) else functools.partial(is_trading_day, market)
    return sum(1 for i in range(1, (later - earlier).days + 1) if trades(earlier + timedelta(days=i)))


def any_market_trades(markets: Iterable[MarketConfig]) -> TradingCalendar:
    """A day is a trading day when any of ``markets`` trades (account-wide counts: breaker cooldowns)."""
    ms = tuple(markets)

    def trades(d: date) -> bool:
        return any(is_trading_day(m, d) for m in ms) if ms else weekdays(d)

    return trades


def add_trading_days(market: MarketConfig, day: date, n: int) -> date:
    """The trading day ``n`` sessions after (n > 0) or before (n < 0) ``day``."""
    d = day
    step = next_trading_day if n >= 0 else previous_trading_day
    for _ in range(abs(n)):
        d = step(market, d)
    return d


# ---------------------------------------------------------------------------------------------
# Decision times


def decision_at(market: MarketConfig, day: date) -> datetime:
    """The UTC instant of ``market``'s decision on local date ``day`` (trading day or not)."""
    local = datetime.combine(day, market.decision_time, tzinfo=market.zone)
    return local.astimezone(UTC)


def local_date(market: MarketConfig, t: datetime) -> date:
    """The calendar date of ``t`` in the market's zone."""
    return ensure_utc(t).astimezone(market.zone).date()


def trading_date_at(market: MarketConfig, t: datetime) -> date:
    """The trading date instant ``t`` belongs to: sessions roll at ``session_close`` (exchange
    local), and weekends and holidays belong to the next trading day."""
    local = ensure_utc(t).astimezone(market.zone)
    d = local.date()
    if is_trading_day(market, d) and local.time() < market.session_close:
        return d
    return next_trading_day(market, d)


def next_decision_after(market: MarketConfig, t: datetime) -> datetime:
    """The first decision instant strictly after ``t`` on a trading day (UTC)."""
    d = local_date(market, t)
    t_utc = ensure_utc(t)
    for _ in range(400):
        if is_trading_day(market, d):
            candidate = decision_at(market, d)
            if candidate > t_utc:
                return candidate
        d += timedelta(days=1)
    raise RuntimeError(f"no trading day for {market.symbol} within 400 days after {t_utc.isoformat()}")


def last_decision_at_or_before(market: MarketConfig, t: datetime) -> tuple[date, datetime]:
    """The latest (trading date, decision instant) not after ``t``: the start-up catch-up candidate."""
    d = local_date(market, t)
    t_utc = ensure_utc(t)
    for _ in range(400):
        if is_trading_day(market, d):
            candidate = decision_at(market, d)
            if candidate <= t_utc:
                return d, candidate
        d -= timedelta(days=1)
    raise RuntimeError(f"no trading day for {market.symbol} within 400 days before {t_utc.isoformat()}")


def decisions_between(market: MarketConfig, start: datetime, end: datetime) -> list[tuple[date, datetime]]:
    """Every (trading date, decision instant) in ``(start, end]``, oldest first (lock-step stepping)."""
    out: list[tuple[date, datetime]] = []
    t = ensure_utc(start)
    end_utc = ensure_utc(end)
    while True:
        nxt = next_decision_after(market, t)
        if nxt > end_utc:
            return out
        out.append((local_date(market, nxt), nxt))
        t = nxt


def find_market(markets: Iterable[MarketConfig], symbol: str) -> MarketConfig:
    """The configured market named ``symbol`` (KeyError listing the configured ones)."""
    listed = list(markets)
    for m in listed:
        if m.symbol == symbol:
            return m
    raise KeyError(f"market {symbol!r} is not configured (configured: {', '.join(m.symbol for m in listed)})")
