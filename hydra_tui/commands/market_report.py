"""Per-market figures for the replay report: P&L from the journalled fills marked to the daily
closes of the months traded, and the hit rate of the cycles' recorded signal on the stored bars,
each split at a change date.

P&L is marked to each traded month's own daily close (the exchange's history of that month): a
fill makes P&L from its fill price to its session's close, a held position from close to close,
commissions are subtracted, and the sum is in account currency (price x multiplier). The stored
continuous series (``CONTFUT``) cannot mark a position: its rows are stored as each session
closes, so they jump by the calendar spread where the front month changes and sit at another
level than the month held during a roll window.

The hit rate counts a cycle of decision date D as a hit when its recorded ``p_up`` (above or
below 0.5) has the sign of the next tradable return on the stored bars: the open of the session
after D to the open of the session after that (what the engine can capture). Days with ``p_up``
of exactly 0.5, no session after the next one yet, or a zero return are left out.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SessionBar:
    """One completed session of the stored continuous series (for the hit rate's returns)."""

    date: dt.date
    open: float
    close: float


@dataclass(frozen=True, slots=True)
class FillLeg:
    """A journalled fill reduced to what P&L needs; ``session`` is its trade date."""

    session: dt.date
    contract: str
    """Contract month traded (``YYYYMM``)."""
    signed_qty: float
    """Contracts, positive bought, negative sold."""
    price: float
    commission: float = 0.0


@dataclass(frozen=True, slots=True)
class Split:
    """A figure before and after the change date (``after`` is None when the run has no change)."""

    before: float
    after: float | None


@dataclass(frozen=True, slots=True)
class HitCount:
    hits: int = 0
    n: int = 0

    @property
    def rate(self) -> float | None:
        return self.hits / self.n if self.n else None


@dataclass(frozen=True, slots=True)
class HitSplit:
    before: HitCount = field(default_factory=HitCount)
    after: HitCount | None = None


def daily_pnl(legs: Sequence[FillLeg], closes: Mapping[str, Mapping[dt.date, float]], sessions: Sequence[dt.date],
              multiplier: float) -> dict[dt.date, float]:
    """P&L of each session in ``sessions`` (account currency): every held month marked from its
    previous mark to its close (a month without a close that day keeps its mark), every fill from
    its price to its month's close, less commission."""
    by_day: dict[dt.date, list[FillLeg]] = {}
    for leg in legs:
        by_day.setdefault(leg.session, []).append(leg)
    held: dict[str, list[float]] = {}
    """month -> [signed qty, last mark]"""
    out: dict[dt.date, float] = {}
    for day in sorted(set(sessions) | set(by_day)):
        pnl = 0.0
        for month, pos in held.items():
            close = closes.get(month, {}).get(day)
            if close is not None:
                pnl += pos[0] * (close - pos[1]) * multiplier
                pos[1] = close
        for leg in by_day.get(day, ()):
            close = closes.get(leg.contract, {}).get(day)
            mark = leg.price if close is None else close
            pnl += leg.signed_qty * (mark - leg.price) * multiplier - leg.commission
            qty = held.get(leg.contract, [0.0, mark])[0] + leg.signed_qty
            if abs(qty) < 1e-9:
                held.pop(leg.contract, None)
            else:
                held[leg.contract] = [qty, mark]
        out[day] = pnl
    return out


def split_sum(values: Mapping[dt.date, float], change: dt.date | None, start: dt.date | None = None) -> Split:
    """Sum of ``values`` from ``start`` before ``change`` and from ``change`` on."""
    kept = {d: v for d, v in values.items() if start is None or d >= start}
    if change is None:
        return Split(sum(kept.values()), None)
    return Split(sum(v for d, v in kept.items() if d < change), sum(v for d, v in kept.items() if d >= change))


def hit_rates(bars: Sequence[SessionBar], signals: Sequence[tuple[dt.date, float | None]],
              change: dt.date | None) -> HitSplit:
    """Hits of each decision's signal on the next tradable return, before and after ``change``
    (a decision belongs to the side its tradable return starts on)."""
    dates = [b.date for b in bars]
    before, after = [0, 0], [0, 0]
    for day, p_up in signals:
        if p_up is None or p_up == 0.5:
            continue
        i = bisect.bisect_right(dates, day)
        if i + 1 >= len(bars) or bars[i].open <= 0:
            continue
        ret = bars[i + 1].open / bars[i].open - 1.0
        if ret == 0:
            continue
        side = after if change is not None and bars[i].date >= change else before
        side[0] += int((p_up > 0.5) == (ret > 0))
        side[1] += 1
    return HitSplit(HitCount(*before), HitCount(*after) if change is not None else None)


def legs_from_fills(fills: Sequence[Any], trading_date_of: Any) -> list[FillLeg]:
    """Journalled fills as legs on their trade dates (``trading_date_of(fill_time)``)."""
    out = []
    for f in fills:
        sign = 1.0 if f.direction == "BUY" else -1.0
        out.append(FillLeg(trading_date_of(f.fill_time), str(f.contract_month or "")[:6], sign * float(f.qty),
                           float(f.fill_price), float(f.commission or 0.0)))
    return out


def change_in_window(change_dates: Sequence[dt.date], first: dt.date | None, last: dt.date | None) -> dt.date | None:
    """The first change date inside the run (``first``..``last``), else None."""
    if first is None or last is None:
        return None
    inside = [c for c in change_dates if first <= c <= last]
    return inside[0] if inside else None


def detection(alarm_dates: Sequence[dt.date], change_dates: Sequence[dt.date],
              sessions: Sequence[dt.date]) -> list[dict[str, Any]]:
    """For each change date: the first alarm on or after it and the delay in sessions."""
    out = []
    alarms = sorted(alarm_dates)
    for c in change_dates:
        first = next((a for a in alarms if a >= c), None)
        delay = None
        if first is not None:
            delay = sum(1 for s in sessions if c <= s < first)
        out.append({"change": c, "first_alarm": first, "delay_sessions": delay})
    return out
