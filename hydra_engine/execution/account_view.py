"""The one daily-P&L computation: net liquidation against the close mark of the last completed
session before a given session, used for the decision (session D) and for the gate (session D+1)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hydra_engine.broker.records import AccountSnapshot
from hydra_engine.markets import TradingCalendar, trading_days_between

if TYPE_CHECKING:
    from hydra_engine.store.equity import EquityMark, PeakRecord


class Marks(Protocol):
    """The equity marks the P&L is measured from (the store's ``EquityRepo``)."""

    async def previous_mark(self, trading_date: dt.date) -> EquityMark | None: ...

    async def peak(self) -> PeakRecord | None: ...


class AccountSource(Protocol):
    async def get_account_summary(self) -> AccountSnapshot: ...


@dataclass(frozen=True, slots=True)
class AccountView:
    """The account as of one session: its P&L since the previous session's close, and the peak."""

    snapshot: AccountSnapshot
    session_date: dt.date
    base_date: dt.date | None
    """Trading date of the close mark the P&L is measured from (None: no mark yet)."""
    daily_pnl: float | None
    stale: bool
    """The base mark is more than one trading day before the session: the P&L spans several days,
    so the daily-loss breaker is not judged on it."""
    peak_equity: float

    @property
    def gate_pnl(self) -> float:
        """The figure the gate judges: 0 when unknown or stale (the approval then carries a warning)."""
        return 0.0 if self.stale or self.daily_pnl is None else self.daily_pnl


async def account_view(
    broker: AccountSource, marks: Marks, session_date: dt.date, calendar: TradingCalendar,
) -> AccountView:
    """Read the account now and measure it against the close mark before ``session_date``."""
    snap = await broker.get_account_summary()
    prev = await marks.previous_mark(session_date)
    peak_rec = await marks.peak()
    pnl = None if prev is None else snap.net_liquidation - prev.net_liquidation
    stale = prev is not None and trading_days_between(calendar, prev.trading_date, session_date) > 1
    peak = max(peak_rec.peak, snap.net_liquidation) if peak_rec is not None else snap.net_liquidation
    view_snap = AccountSnapshot(
        account=snap.account, currency=snap.currency, net_liquidation=snap.net_liquidation,
        total_cash=snap.total_cash, gross_position_value=snap.gross_position_value,
        available_funds=snap.available_funds, at=snap.at, daily_pnl=pnl, peak_equity=peak, daily_pnl_stale=stale,
    )
    return AccountView(view_snap, session_date, None if prev is None else prev.trading_date, pnl, stale, peak)
