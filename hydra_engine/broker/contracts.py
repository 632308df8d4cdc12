"""Front-month selection and the roll schedule, from the broker's contract details.

Orders always go to a real contract month (CONTFUT is for history only). The active month is the
nearest one whose roll start (``roll_days`` business days before its last trade date) is still
ahead; inside that window the position belongs in the next month, moved there as a gated two-leg
roll by the order manager. Pure functions here, so the rule is testable without a gateway.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hydra_engine.broker.errors import ContractNotFound

if TYPE_CHECKING:
    from ib_async import Contract, ContractDetails


class MarketLike(Protocol):
    """What contract resolution needs from a market's configuration (``MarketConfig`` fits)."""

    @property
    def symbol(self) -> str: ...

    @property
    def exchange(self) -> str: ...

    @property
    def currency(self) -> str: ...

    @property
    def roll_days(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ContractMonth:
    """One listed futures month as the contract details describe it."""

    con_id: int
    symbol: str
    local_symbol: str
    contract_month: str
    """``YYYYMM``."""
    last_trade_date: dt.date
    exchange: str
    currency: str
    multiplier: float
    """Currency units per price point per contract."""
    min_tick: float
    trading_class: str = ""
    time_zone: str = ""
    contract: Contract | None = field(default=None, compare=False, repr=False)
    """The qualified ib_async ``Contract`` (orders and quotes use it)."""
    details: ContractDetails | None = field(default=None, compare=False, repr=False)
    """The ib_async ``ContractDetails`` (trading hours for session checks)."""

    def qualified(self) -> Contract:
        """The qualified ib_async ``Contract`` orders and quotes go to (every month the gateway
        lists has one; a month built by hand without one cannot be traded)."""
        if self.contract is None:
            raise ContractNotFound(f"{self.local_symbol}: no qualified contract to send to the broker")
        return self.contract


@dataclass(frozen=True, slots=True)
class ResolvedContract:
    """Where a market's position belongs on ``as_of``."""

    symbol: str
    as_of: dt.date
    active: ContractMonth
    """The month to hold and trade now."""
    front: ContractMonth
    """The nearest unexpired month (equals ``active`` outside a roll window)."""
    months: tuple[ContractMonth, ...]
    """Every unexpired month, nearest first."""
    roll_days: int
    roll_start: dt.date
    """The first date on which ``active`` itself must be rolled out of."""

    @property
    def in_roll_window(self) -> bool:
        """True when the front month is being rolled out of (``active`` is a later month)."""
        return self.active.con_id != self.front.con_id

    def needs_roll(self, held_con_id: int) -> bool:
        """True when a position held in ``held_con_id`` must move to ``active``."""
        return held_con_id != self.active.con_id and any(m.con_id == held_con_id for m in self.months)


def parse_ib_date(text: str) -> dt.date:
    """``YYYYMMDD`` (optionally followed by a time and zone, as IB sends) to a date."""
    raw = (text or "").strip()
    head = raw[:8]
    if len(head) != 8 or not head.isdigit():
        raise ValueError(f"last trade date {text!r} is not YYYYMMDD")
    return dt.date(int(head[:4]), int(head[4:6]), int(head[6:8]))


def business_days_before(
    day: dt.date, n: int, is_trading_day: Callable[[dt.date], bool] | None = None
) -> dt.date:
    """The date ``n`` trading days before ``day`` (weekdays unless a market calendar is given)."""
    if n < 0:
        raise ValueError(f"roll_days={n} must be >= 0")
    trading = is_trading_day or (lambda d: d.weekday() < 5)
    d = day
    left = n
    while left > 0:
        d -= dt.timedelta(days=1)
        if trading(d):
            left -= 1
    return d


def month_from_details(details: ContractDetails) -> ContractMonth:
    """Build a ``ContractMonth`` from one ib_async ``ContractDetails``."""
    c = details.contract
    if c is None:
        raise ValueError("contract details without a contract")
    last = c.lastTradeDateOrContractMonth or getattr(details, "realExpirationDate", "")
    last_date = parse_ib_date(last)
    month = (getattr(details, "contractMonth", "") or last[:6])[:6]
    return ContractMonth(
        con_id=int(c.conId),
        symbol=c.symbol,
        local_symbol=c.localSymbol,
        contract_month=month,
        last_trade_date=last_date,
        exchange=c.exchange,
        currency=c.currency,
        multiplier=float(c.multiplier or 1.0),
        min_tick=float(details.minTick or 0.0),
        trading_class=c.tradingClass,
        time_zone=getattr(details, "timeZoneId", "") or "",
        contract=c,
        details=details,
    )


def select_active_month(
    symbol: str,
    months: Iterable[ContractMonth],
    as_of: dt.date,
    roll_days: int,
    is_trading_day: Callable[[dt.date], bool] | None = None,
) -> ResolvedContract:
    """Pick the front month and the month to hold on ``as_of``.

    Raises ``ContractNotFound`` when no unexpired month is listed, or when every listed month is
    already inside its roll window (the next month is not listed yet).
    """
    if roll_days < 0:
        raise ValueError(f"roll_days={roll_days} for {symbol} must be >= 0")
    live: Sequence[ContractMonth] = sorted(
        (m for m in months if m.last_trade_date >= as_of), key=lambda m: (m.last_trade_date, m.con_id)
    )
    if not live:
        raise ContractNotFound(f"{symbol}: no unexpired futures month listed on {as_of.isoformat()}", code=200)
    for m in live:
        start = business_days_before(m.last_trade_date, roll_days, is_trading_day)
        if as_of < start:
            return ResolvedContract(
                symbol=symbol,
                as_of=as_of,
                active=m,
                front=live[0],
                months=tuple(live),
                roll_days=roll_days,
                roll_start=start,
            )
    raise ContractNotFound(
        f"{symbol}: every listed month is inside its {roll_days}-day roll window on {as_of.isoformat()}"
        f" (last listed {live[-1].local_symbol} trades until {live[-1].last_trade_date.isoformat()})"
    )
