"""When a contract's market is open, from the trading (or liquid) hours its contract details carry.

The cycle decides after the close and works the order in the next session; an order that is sent
while the market is closed rests (PreSubmitted) and its patience schedule must start at the open,
from that session's quote, or it would run out before the market opens.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import structlog

log = structlog.get_logger(__name__)


def _sessions(details: Any, liquid: bool) -> list[tuple[dt.datetime, dt.datetime]]:
    if details is None or not getattr(details, "timeZoneId", ""):
        return []
    try:
        zone = ZoneInfo(details.timeZoneId)
        raw = details.liquidSessions() if liquid else details.tradingSessions()
        out = []
        for s in raw:
            start = s.start if s.start.tzinfo else s.start.replace(tzinfo=zone)
            end = s.end if s.end.tzinfo else s.end.replace(tzinfo=zone)
            out.append((start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)))
        return sorted(out)
    except Exception as exc:  # noqa: BLE001 - malformed hours: treat the market as open
        log.warning("sessions.unparsable_hours", error=repr(exc))
        return []


def session_start(details: Any, now: dt.datetime, *, liquid: bool = False) -> dt.datetime | None:
    """``now`` inside a session, else the next session's open; None when the hours are unknown.

    Unknown hours (or none left in the published window) mean "trade now rather than never"."""
    for start, end in _sessions(details, liquid):
        if end > now:
            return max(start, now)
    return None


def next_session_open(details: Any, now: dt.datetime, *, liquid: bool = False) -> dt.datetime | None:
    """The next open when the market is closed at ``now``; None when it is open or hours are unknown."""
    start = session_start(details, now, liquid=liquid)
    return start if start is not None and start > now else None
