"""What each order type does on the intraday path, and which type / time-in-force pairs IB takes.

The book asks ``plan(order, start, end)`` what an order does over ``(start, end]`` and gets back
actions in time order: fills, a stop's trigger, or the cancel of an auction order whose limit the
auction did not reach. Everything reads the same minute paths the fill model uses, and only prints
strictly after ``start``, so an order never fills at a price printed before it could act:

- MKT / LMT: the fill model (touch, impact, queue, participation) over each session.
- STP / STP LMT: the first print at or through the stop (``auxPrice``; buy: at or above, sell: at or
  below, IB's "last" trigger for futures) triggers it; from that print on it is a MKT (STP) or a
  LMT at ``lmtPrice`` (STP LMT) and fills on later prints only, never on the trigger print itself.
- MOC / LOC: the closing auction of the session the order waits for, at the session's last print
  (the daily bar's close), whole quantity; a LOC whose limit the close does not meet is cancelled.
- TIF OPG (MKT = market on open, LMT = limit on open): the opening auction of the first session
  that opens after the order was placed, at the session's first print (the daily bar's open); an
  unmet limit is cancelled there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .datafeed import DataFeed
    from .intraday_paths import IntradayPath
    from .market_types import SimFill
    from .orders import WorkingOrder

ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT", "MOC", "LOC")
TIFS = ("DAY", "GTC", "OPG", "GTD")
STOP_TYPES = ("STP", "STP LMT")
CLOSE_TYPES = ("MOC", "LOC")
LIMIT_PRICED = ("LMT", "STP LMT", "LOC")
"""Types whose ``lmtPrice`` must be a positive price on the tick grid."""


@dataclass(frozen=True, slots=True)
class OrderAction:
    """One thing an order does at ``time``: ``fill`` (qty at price), ``trigger`` (a stop becomes a
    market or limit order) or ``cancel`` (an auction order whose limit was not met)."""

    time: dt.datetime
    kind: str
    qty: int = 0
    price: float = 0.0
    reason: str = ""


class PathMarket(Protocol):
    """What order types read of the market side (the universe, through the data feed)."""

    def sessions_between(self, symbol: str, t0: dt.datetime, t1: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        ...

    def trade_date(self, symbol: str, t: dt.datetime) -> dt.date: ...

    def path(self, con_id: int, day: dt.date) -> IntradayPath | None:
        """The session path of ``con_id`` on trade date ``day`` (None when it has none)."""
        ...

    def match(self, con_id: int, side: str, qty: int, limit: float | None,
              start: dt.datetime, end: dt.datetime) -> Sequence[SimFill]: ...  # fmt: skip


class FeedMarket:
    """``PathMarket`` over the exchange's data feed and its universe."""

    def __init__(self, feed: DataFeed) -> None:
        self._feed = feed
        self._paths = getattr(feed.u, "intraday_path", None)

    @property
    def has_paths(self) -> bool:
        """Whether the universe exposes its minute paths (stops and auctions need them)."""
        return self._paths is not None

    def sessions_between(self, symbol: str, t0: dt.datetime, t1: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        return self._feed.sessions_between(symbol, t0, t1)

    def trade_date(self, symbol: str, t: dt.datetime) -> dt.date:
        return self._feed.trade_date(symbol, t)

    def path(self, con_id: int, day: dt.date) -> IntradayPath | None:
        if self._paths is None:
            return None
        try:
            path: IntradayPath = self._paths(con_id, day)
        except (KeyError, ValueError):  # the month does not trade that day (not listed, expired)
            return None
        return path

    def match(self, con_id: int, side: str, qty: int, limit: float | None,
              start: dt.datetime, end: dt.datetime) -> Sequence[SimFill]:  # fmt: skip
        return self._feed.u.match(con_id, side, qty, limit, start, end)  # type: ignore[arg-type]


def check_type(order_type: str, tif: str, lmt: float | None, aux: float | None, good_till: str,
               paths: bool) -> str | None:  # fmt: skip
    """Why IB would refuse this type / TIF / price combination (None when it is fine)."""
    if order_type not in ORDER_TYPES:
        return f"Order type {order_type!r} is not supported by the simulator ({', '.join(ORDER_TYPES)})"
    if tif not in TIFS:
        return f"Time in force {tif!r} is not supported ({', '.join(TIFS)})"
    if order_type not in ("MKT", "LMT") and not paths:
        return f"Order type {order_type} needs intraday paths, which this market universe does not have"
    if tif == "OPG" and order_type not in ("MKT", "LMT"):
        return f"Time in force OPG is for MKT and LMT orders (at the open), not {order_type}"
    if order_type in CLOSE_TYPES and tif != "DAY":
        return f"{order_type} orders are DAY orders (the session's close), not {tif}"
    if tif == "GTD" and not good_till.strip():
        return "A GTD order needs goodTillDate (e.g. '20180105 15:00:00 UTC')"
    if order_type in LIMIT_PRICED and (lmt is None or lmt <= 0):
        return f"A {order_type} order needs a positive limit price"
    if order_type in STOP_TYPES and (aux is None or aux <= 0):
        return f"A {order_type} order needs a positive stop price (auxPrice)"
    return None


def plan(o: WorkingOrder, start: dt.datetime, end: dt.datetime, market: PathMarket) -> list[OrderAction]:
    """What ``o`` does over ``(start, end]``, in time order, for its remaining quantity."""
    remaining = int(o.remaining)
    if remaining <= 0 or end <= start:
        return []
    if o.tif == "OPG":
        return _opening_auction(o, start, end, market, remaining)
    if o.order_type in CLOSE_TYPES:
        return _closing_auction(o, start, end, market, remaining)
    if o.order_type in STOP_TYPES and not o.triggered:
        hit = _trigger_time(o, start, end, market)
        if hit is None:
            return []
        return [OrderAction(hit, "trigger"), *_continuous(o, hit, end, market, remaining)]
    return _continuous(o, start, end, market, remaining)


def working_limit(o: WorkingOrder) -> float | None:
    """The limit the fill model applies: None for a market (or a triggered stop) order."""
    if o.order_type in ("LMT", "STP LMT", "LOC"):
        return o.lmt_price
    return None


def _continuous(o: WorkingOrder, start: dt.datetime, end: dt.datetime, market: PathMarket,
                remaining: int) -> list[OrderAction]:  # fmt: skip
    out: list[OrderAction] = []
    limit = working_limit(o)
    for s_open, s_close in market.sessions_between(o.symbol, start, end):
        a, b = max(s_open, start), min(s_close, end)
        if b <= a or remaining <= 0:
            continue
        for f in market.match(o.con_id, o.action, remaining, limit, a, b):
            q = min(int(f.qty), remaining)
            if q <= 0:
                continue
            remaining -= q
            out.append(OrderAction(f.time, "fill", q, f.price))
    return out


def _eps(price: float) -> float:
    return max(1e-9, abs(price) * 1e-12)


def _trigger_time(o: WorkingOrder, start: dt.datetime, end: dt.datetime, market: PathMarket) -> dt.datetime | None:
    """Print time of the first trade at or through the stop after ``start`` (None if none)."""
    stop = o.aux_price
    if stop is None:
        return None
    for s_open, s_close in market.sessions_between(o.symbol, start, end):
        a, b = max(s_open, start), min(s_close, end)
        if b <= a:
            continue
        path = market.path(o.con_id, market.trade_date(o.symbol, s_open))
        if path is None:
            continue
        i0, i1 = path.first_step_after(a), path.last_step_at_or_before(b)
        if i0 > i1:
            continue
        seg = path.price[i0: i1 + 1]
        hit = seg >= stop - _eps(stop) if o.action == "BUY" else seg <= stop + _eps(stop)
        if hit.any():
            return path.step_time(i0 + int(hit.argmax()))
    return None


def _meets(o: WorkingOrder, price: float) -> bool:
    limit = working_limit(o)
    if limit is None:
        return True
    return price <= limit + _eps(limit) if o.action == "BUY" else price >= limit - _eps(limit)


def _closing_auction(o: WorkingOrder, start: dt.datetime, end: dt.datetime, market: PathMarket,
                     remaining: int) -> list[OrderAction]:  # fmt: skip
    for s_open, s_close in market.sessions_between(o.symbol, start, end):
        if not start < s_close <= end:
            continue
        path = market.path(o.con_id, market.trade_date(o.symbol, s_open))
        if path is None:
            return [OrderAction(s_close, "cancel", reason="no closing auction for this contract month")]
        close = float(path.price[-1])
        if not _meets(o, close):
            return [OrderAction(s_close, "cancel", reason=f"the close {close:g} did not reach the limit")]
        return [OrderAction(s_close, "fill", remaining, close)]
    return []


def _opening_auction(o: WorkingOrder, start: dt.datetime, end: dt.datetime, market: PathMarket,
                     remaining: int) -> list[OrderAction]:  # fmt: skip
    for s_open, _ in market.sessions_between(o.symbol, start, end):
        if s_open <= o.placed_at:
            continue  # an OPG order waits for the first open after it was placed
        path = market.path(o.con_id, market.trade_date(o.symbol, s_open))
        if path is None:
            return [OrderAction(s_open, "cancel", reason="no opening auction for this contract month")] \
                if start < s_open <= end else []  # fmt: skip
        t = path.step_time(0)
        if not start < t <= end:
            return []
        opening = float(path.price[0])
        if not _meets(o, opening):
            return [OrderAction(t, "cancel", reason=f"the open {opening:g} did not reach the limit")]
        return [OrderAction(t, "fill", remaining, opening)]
    return []
