"""Records and seams shared by the embedded exchange's market side and its wire side.

The market side (catalog, history, scenarios, term structure, intraday paths, fill model, clock)
produces prices; the wire side (server, order book, account, persistence, faults) speaks IB's
protocol and keeps the account. They meet only through the types in this module, so each can be
tested alone. Everything here is simulator-internal: nothing in ``hydra_engine`` outside ``sim``
may import it, just as nothing in HYDRA imports IB Gateway.

Times are timezone-aware UTC ``datetime``s unless a field says otherwise; prices are in the
contract's quote currency per unit (not multiplied); sizes are contracts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

Side = Literal["BUY", "SELL"]


@dataclass(frozen=True, slots=True)
class SessionHours:
    """A product's daily session in exchange local time (IB's ``timeZoneId`` names the zone).

    When ``open`` is later than ``close`` the session opens on the previous calendar day (CME
    Globex energy: 17:00 to 16:00 Central).
    """

    time_zone: str
    open: dt.time
    close: dt.time
    liquid_open: dt.time
    liquid_close: dt.time


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """One futures product (a root such as CL on NYMEX) as IB's contract details describe it."""

    symbol: str
    exchange: str
    currency: str
    multiplier: float
    min_tick: float
    long_name: str
    trading_class: str
    hours: SessionHours
    listed_months: str
    """Month codes listed, e.g. ``"FGHJKMNQUVXZ"`` (all) or ``"HKNUZ"`` (grains)."""
    max_order_size: int
    """Largest quantity one order may have; above it the exchange rejects with error 201."""


@dataclass(frozen=True, slots=True)
class FutureMonth:
    """One listed contract month: what an order or a position refers to."""

    con_id: int
    symbol: str
    local_symbol: str
    """IB style, e.g. ``CLZ6``."""
    contract_month: str
    """``YYYYMM``."""
    last_trade_date: dt.date
    real_expiration_date: dt.date


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One completed session. ``date`` is the trade date the session closes on."""

    date: dt.date
    open: float
    high: float
    low: float
    close: float
    volume: int
    wap: float
    bar_count: int


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book and the day's statistics at one instant; ``close`` is the previous close."""

    bid: float
    ask: float
    last: float
    bid_size: int
    ask_size: int
    last_size: int
    volume: int
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class SimFill:
    """One (partial) execution produced by the fill model."""

    time: dt.datetime
    qty: int
    price: float


class MarketUniverse(Protocol):
    """Everything the wire side asks of the market side. Deterministic for a given seed."""

    def specs(self) -> Sequence[ContractSpec]: ...

    def spec(self, symbol: str) -> ContractSpec | None: ...

    def months(self, symbol: str, as_of: dt.date, include_expired: bool = False) -> Sequence[FutureMonth]:
        """Months listed on ``as_of`` (front first); with ``include_expired`` also the expired ones."""
        ...

    def month(self, con_id: int) -> FutureMonth | None: ...

    def is_trading_day(self, symbol: str, day: dt.date) -> bool: ...

    def session_bounds(self, symbol: str, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """UTC open and close of the session that closes on trade date ``day``."""
        ...

    def trade_date(self, symbol: str, at: dt.datetime) -> dt.date:
        """The trade date a UTC instant belongs to (the session rolls at its close)."""
        ...

    def daily_bars(self, con_id: int, end: dt.date, count: int) -> Sequence[DailyBar]:
        """Up to ``count`` completed bars of one month ending at ``end`` (inclusive), oldest first."""
        ...

    def continuous_bars(self, symbol: str, end: dt.date, count: int) -> Sequence[DailyBar]:
        """CONTFUT history: front-month bars back-adjusted across rolls, oldest first."""
        ...

    def quote(self, con_id: int, at: dt.datetime) -> Quote:
        """Book at ``at``: inside a session, from the intraday path; outside, the last close."""
        ...

    def match(
        self,
        con_id: int,
        side: Side,
        qty: int,
        limit: float | None,
        start: dt.datetime,
        end: dt.datetime,
    ) -> Sequence[SimFill]:
        """Fills for a working order over ``(start, end]``, using only prices after ``start``.

        ``limit`` None is a market order. Uses the exchange's own hidden spread, impact and noise
        parameters; quantities add up to at most ``qty``; large orders against the day's volume
        fill in parts across the window. Deterministic for (seed, con_id, start, end, order).
        """
        ...
