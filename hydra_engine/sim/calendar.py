"""US futures exchange calendar: holidays by rule, business days, session bounds, expiry rules.

One holiday set serves CME, CBOT, NYMEX, ICE US and MGEX in the simulator (the real ones differ
only in early closes, which we do not model). Holidays are computed by rule, so any year works.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Callable
from zoneinfo import ZoneInfo

from hydra_engine.sim.market_types import SessionHours

_ONE_DAY = dt.timedelta(days=1)

# IB's timeZoneId values are old-style names; map them to canonical IANA keys.
_TZ_ALIASES = {
    "US/Central": "America/Chicago",
    "US/Eastern": "America/New_York",
    "US/Mountain": "America/Denver",
    "US/Pacific": "America/Los_Angeles",
}

MONTH_CODES = "FGHJKMNQUVXZ"
"""Futures month letters, January (F) to December (Z)."""


@functools.lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """ZoneInfo for an IB ``timeZoneId`` such as ``US/Central``."""
    return ZoneInfo(_TZ_ALIASES.get(name, name))


def easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian computus)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """n-th (1-based) ``weekday`` (Mon=0) of a month; n=-1 is the last."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - _ONE_DAY
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: dt.date) -> dt.date:
    """Saturday holidays are observed on Friday, Sunday ones on Monday."""
    if day.weekday() == 5:
        return day - _ONE_DAY
    if day.weekday() == 6:
        return day + _ONE_DAY
    return day


@functools.lru_cache(maxsize=256)
def us_holidays(year: int) -> frozenset[dt.date]:
    """Full-day closures of US futures exchanges in ``year``."""
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Presidents' Day
        easter(year) - dt.timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _observed(dt.date(year, 7, 4)),  # Independence Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(dt.date(year, 12, 25)),  # Christmas
    }
    new_year = dt.date(year, 1, 1)
    if new_year.weekday() != 5:  # a Saturday New Year is not moved back into the old year
        days.add(_observed(new_year))
    if year >= 2022:
        days.add(_observed(dt.date(year, 6, 19)))  # Juneteenth
    return frozenset(days)


def is_business_day(day: dt.date) -> bool:
    """Weekday and not an exchange holiday."""
    return day.weekday() < 5 and day not in us_holidays(day.year)


def next_business_day(day: dt.date) -> dt.date:
    """First business day strictly after ``day``."""
    day += _ONE_DAY
    while not is_business_day(day):
        day += _ONE_DAY
    return day


def previous_business_day(day: dt.date) -> dt.date:
    """Last business day strictly before ``day``."""
    day -= _ONE_DAY
    while not is_business_day(day):
        day -= _ONE_DAY
    return day


def business_days_before(day: dt.date, n: int) -> dt.date:
    """The business day ``n`` business days before ``day`` (``day`` itself need not be one)."""
    for _ in range(n):
        day = previous_business_day(day)
    return day


def business_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Business days in ``[start, end]``, oldest first."""
    out: list[dt.date] = []
    day = start
    while day <= end:
        if is_business_day(day):
            out.append(day)
        day += _ONE_DAY
    return out


# ----- sessions --------------------------------------------------------------------------------

def session_bounds(hours: SessionHours, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """UTC open and close of the session closing on ``day``; overnight sessions open the day before."""
    tz = zone(hours.time_zone)
    open_day = day - _ONE_DAY if hours.open > hours.close else day
    opened = dt.datetime.combine(open_day, hours.open, tzinfo=tz)
    closed = dt.datetime.combine(day, hours.close, tzinfo=tz)
    return opened.astimezone(dt.timezone.utc), closed.astimezone(dt.timezone.utc)


def liquid_bounds(hours: SessionHours, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """UTC bounds of the liquid (regular) hours of the session closing on ``day``."""
    tz = zone(hours.time_zone)
    open_day = day - _ONE_DAY if hours.liquid_open > hours.liquid_close else day
    opened = dt.datetime.combine(open_day, hours.liquid_open, tzinfo=tz)
    closed = dt.datetime.combine(day, hours.liquid_close, tzinfo=tz)
    return opened.astimezone(dt.timezone.utc), closed.astimezone(dt.timezone.utc)


def trade_date(hours: SessionHours, at: dt.datetime) -> dt.date:
    """The trade date ``at`` belongs to: sessions roll at their close; closed days roll forward."""
    if at.tzinfo is None:
        raise ValueError(f"at must be timezone-aware, got naive {at.isoformat()}")
    local = at.astimezone(zone(hours.time_zone))
    day = local.date()
    if local.time() >= hours.close:
        day += _ONE_DAY
    while not is_business_day(day):
        day += _ONE_DAY
    return day


def last_completed_session(hours: SessionHours, at: dt.datetime) -> dt.date:
    """Trade date of the latest session whose close is at or before ``at``."""
    day = trade_date(hours, at)
    _, close = session_bounds(hours, day)
    if close <= at:
        return day
    return previous_business_day(day)


def _ib_hours_text(hours: SessionHours, day: dt.date, liquid: bool) -> str:
    bounds = liquid_bounds if liquid else session_bounds
    tz = zone(hours.time_zone)
    o, c = bounds(hours, day)
    o, c = o.astimezone(tz), c.astimezone(tz)
    return f"{o:%Y%m%d:%H%M}-{c:%Y%m%d:%H%M}"


def ib_hours(hours: SessionHours, start: dt.date, n_days: int = 7, liquid: bool = False) -> str:
    """IB's ``tradingHours``/``liquidHours`` text for the calendar days from ``start``.

    Format: ``20250106:1700-20250107:1600;20250111:CLOSED;...`` in the product's time zone.
    """
    parts = []
    for i in range(n_days):
        day = start + dt.timedelta(days=i)
        if is_business_day(day):
            parts.append(_ib_hours_text(hours, day, liquid))
        else:
            parts.append(f"{day:%Y%m%d}:CLOSED")
    return ";".join(parts)


# ----- expiry rules ------------------------------------------------------------------------------

ExpiryRule = Callable[[int, int], dt.date]
"""(contract year, contract month) -> last trade date."""


def expiry_nymex_crude(year: int, month: int) -> dt.date:
    """NYMEX CL: 3 business days before the 25th of the month before delivery.

    When the 25th is not a business day, count from the business day before it (4 days before).
    """
    prev_year, prev_month = (year - 1, 12) if month == 1 else (year, month - 1)
    anchor = dt.date(prev_year, prev_month, 25)
    if not is_business_day(anchor):
        anchor = previous_business_day(anchor)
    return business_days_before(anchor, 3)


def expiry_business_day_before(day_of_month: int) -> ExpiryRule:
    """Rule: the business day before the given calendar day of the contract month (CBOT grains: 15)."""

    def rule(year: int, month: int) -> dt.date:
        return previous_business_day(dt.date(year, month, day_of_month))

    return rule


def expiry_nth_business_day(n: int) -> ExpiryRule:
    """Rule: the ``n``-th business day counted back from the month's end (1 = last business day)."""

    def rule(year: int, month: int) -> dt.date:
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        return business_days_before(nxt, n)

    return rule


EXPIRY_RULES: dict[str, ExpiryRule] = {
    "nymex_crude": expiry_nymex_crude,
    "bd_before_15": expiry_business_day_before(15),
    "bd_before_16": expiry_business_day_before(16),
    "last_bd": expiry_nth_business_day(1),
}
"""Named expiry rules the catalog refers to."""
