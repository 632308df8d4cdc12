"""When a contract's market is open, from the trading hours its contract details carry.

An order sent after the close rests (PreSubmitted) until the next session; its patience schedule
must start at that open, from that session's quote, or it would run out before the market opens.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import structlog

log = structlog.get_logger(__name__)


def _sessions(details: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    if details is None or not getattr(details, "tradingHours", "") or not getattr(details, "timeZoneId", ""):
        return []
    try:
        zone = ZoneInfo(details.timeZoneId)
        out = []
        for s in details.tradingSessions():
            start = s.start if s.start.tzinfo else s.start.replace(tzinfo=zone)
            end = s.end if s.end.tzinfo else s.end.replace(tzinfo=zone)
            out.append((start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)))
        return sorted(out)
    except Exception as exc:  # noqa: BLE001 - malformed hours: treat the market as open
        log.warning("sessions.unparsable_hours", error=repr(exc))
        return []


def next_session_open(details: Any, now: dt.datetime) -> dt.datetime | None:
    """None when ``now`` is inside a session (or the hours are unknown); else the next open.

    Unknown hours mean "assume open", so an order is never held back on missing data; a market
    closed for the whole published window also yields None (the broker keeps the order resting).
    """
    sessions = _sessions(details)
    for start, end in sessions:
        if start <= now < end:
            return None
        if start > now:
            return start
    return None
