"""IB Gateway's daily restart window: when the broker is expected to be away.

IB Gateway (and TWS) restart once a day at a time the user sets; for a few minutes around it the
API session is gone. Knowing the window lets the runner hold a decision that falls inside it until
it ends, and lets the alerts stay quiet about an outage that is only the restart. The window is a
local time of day in its own zone ("23:45-00:05" in America/New_York); it may cross midnight and
follows the zone's daylight-saving changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FORMAT_HINT = 'local "HH:MM-HH:MM", e.g. "23:45-00:05" (empty: no window)'


def _parse_hhmm(text: str) -> dt.time:
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ValueError(f"{text.strip()!r} is not HH:MM")
    h, m = int(hh), int(mm)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{text.strip()!r} is not a time of day")
    return dt.time(h, m)


@dataclass(frozen=True, slots=True)
class RestartWindow:
    """A daily window ``[start, end)`` of local time in ``zone``; ``start > end`` crosses midnight."""

    start: dt.time
    end: dt.time
    zone: str

    @classmethod
    def parse(cls, text: str, zone: str) -> RestartWindow | None:
        """``"23:45-00:05"`` in ``zone``; ``""`` gives None. ValueError says what is accepted."""
        if not text or not text.strip():
            return None
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time zone {zone!r} is not a known IANA zone (e.g. 'America/New_York')") from None
        first, sep, second = text.partition("-")
        if not sep:
            raise ValueError(f"expected {FORMAT_HINT}")
        try:
            start, end = _parse_hhmm(first), _parse_hhmm(second)
        except ValueError as exc:
            raise ValueError(f"{exc}; expected {FORMAT_HINT}") from None
        if start == end:
            raise ValueError("the window is empty (start equals end)")
        return cls(start, end, zone)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone}"

    def contains(self, t: dt.datetime) -> bool:
        """True when instant ``t`` (timezone-aware) falls inside the window."""
        local = t.astimezone(self.tz).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, t: dt.datetime) -> dt.datetime:
        """The first end of the window strictly after ``t`` (UTC)."""
        tz = self.tz
        local = t.astimezone(tz)
        for days in (0, 1, 2):
            end = dt.datetime.combine(local.date() + dt.timedelta(days=days), self.end, tzinfo=tz)
            if end > local:
                return end.astimezone(dt.timezone.utc)
        raise AssertionError("unreachable: an end of day exists within two days")

    def defer(self, t: dt.datetime) -> dt.datetime:
        """``t`` itself outside the window; inside it, the window's end (when the gateway is back)."""
        return self.end_after(t) if self.contains(t) else t
