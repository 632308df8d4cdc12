"""``reqPnL`` and ``reqPnLSingle``: an account's and a position's P&L, streamed as it changes.

IB's figures, as the exchange computes them from its own books:

- ``unrealizedPnL``: open position x (mark x multiplier) - position x average cost, since the
  position was opened (the account's ``UnrealizedPnL``).
- ``realizedPnL``: realized on today's fills, net of today's commissions.
- ``dailyPnL``: since the previous session's close, per contract: position now x mark - position at
  the start of the trade date x previous close - the day's fills (signed quantity x price) - the
  day's commissions, all x multiplier. Summed over the account it is the change of net liquidation
  since the last close. "Today" is each contract's trade date, which rolls at its session close.
- ``value`` (single): position x mark x multiplier.

A subscription gets its figures at once, again after every fill that touches its account, and as
the clock moves whenever they changed (at most once per simulated second, IB's cadence); cancel
stops it. Marks are those the account subscriptions use (``AccountBook.snapshot``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from . import messages as M
from .account import DayLedger
from .account_book import AccountBook
from .datafeed import DataFeed
from .requests import CancelPnL, CancelPnLSingle, ReqPnL, ReqPnLSingle

log = structlog.get_logger(__name__)
MIN_INTERVAL = dt.timedelta(seconds=1)
"""Time-driven updates come at most this often (simulated time), as IB's do."""


@dataclass(frozen=True, slots=True)
class PnLFigures:
    """One account's or one position's P&L, account currency (``position``/``value`` for singles)."""

    daily: float
    unrealized: float
    realized: float
    position: float = 0.0
    value: float = 0.0


class PnLCalculator:
    """Daily, unrealized and realized P&L from the accounts' positions, day ledgers and marks."""

    def __init__(self, accounts: AccountBook, feed: DataFeed) -> None:
        self._accounts = accounts
        self._feed = feed
        self._refs: dict[tuple[int, dt.date], float | None] = {}

    def position(self, account: str, con_id: int, now: dt.datetime) -> PnLFigures:
        _, marks = self._accounts.snapshot(account)
        return self._single(account, con_id, marks, now)

    def account(self, account: str, now: dt.datetime) -> PnLFigures:
        snap, marks = self._accounts.snapshot(account)
        acct = self._accounts.get(account)
        daily = realized = 0.0
        for con_id in sorted({*acct.positions, *acct.day}):
            pos = acct.positions.get(con_id)
            if (pos is None or pos.qty == 0) and not self._traded_today(acct.day.get(con_id), con_id, now):
                continue  # flat and untouched today: nothing to add
            f = self._single(account, con_id, marks, now)
            daily += f.daily
            realized += f.realized
        return PnLFigures(round(daily, 2), snap.unrealized_pnl, round(realized, 2))

    def _traded_today(self, led: DayLedger | None, con_id: int, now: dt.datetime) -> bool:
        month = self._feed.u.month(con_id)
        return led is not None and month is not None and led.trade_date == self._feed.trade_date(month.symbol, now)

    def _single(self, account: str, con_id: int, marks: dict[int, float], now: dt.datetime) -> PnLFigures:
        acct = self._accounts.get(account)
        month = self._feed.u.month(con_id)
        pos = acct.positions.get(con_id)
        qty = pos.qty if pos is not None else 0.0
        if month is None:
            return PnLFigures(0.0, 0.0, 0.0, qty)
        spec = self._feed.u.spec(month.symbol)
        mult = pos.multiplier if pos is not None else (spec.multiplier if spec else 1.0)
        today = self._feed.trade_date(month.symbol, now)
        led = acct.day.get(con_id)
        if led is not None and led.trade_date != today:
            led = None
        start_qty = led.start_qty if led is not None else qty
        ref = self._previous_close(con_id, today)
        mark = marks.get(con_id)
        if mark is None:  # no quote: value at the previous close, else at cost
            mark = ref if ref is not None else (pos.avg_cost / mult if pos is not None and mult else 0.0)
        if ref is None:
            ref = mark
        flows = led.cash_flow if led is not None else 0.0
        commissions = led.commissions if led is not None else 0.0
        realized = (led.realized - commissions) if led is not None else 0.0
        daily = qty * mark * mult - start_qty * ref * mult - flows - commissions
        unrealized = qty * mark * mult - qty * pos.avg_cost if pos is not None and qty else 0.0
        return PnLFigures(round(daily, 2), round(unrealized, 2), round(realized, 2), qty, round(qty * mark * mult, 2))

    def _previous_close(self, con_id: int, today: dt.date) -> float | None:
        """Close of the last session before trade date ``today`` (the daily P&L's reference)."""
        key = (con_id, today)
        if key not in self._refs:
            if len(self._refs) > 4_096:
                self._refs.clear()
            try:
                bars = self._feed.u.daily_bars(con_id, today - dt.timedelta(days=1), 1)
            except (KeyError, ValueError):
                bars = []
            self._refs[key] = float(bars[-1].close) if bars else None
        return self._refs[key]


class PnLSession(Protocol):
    """What the P&L streams use of their client session."""

    def send(self, fields: M.Fields) -> None: ...

    def error(self, req_id: int, code: int, text: str) -> None: ...


@dataclass(slots=True)
class _Sub:
    account: str
    con_id: int | None
    """None for reqPnL (the whole account)."""
    sent: PnLFigures | None = None


class PnLStreams:
    """One connection's P&L subscriptions."""

    def __init__(self, session: PnLSession, calc: PnLCalculator, accounts: Callable[[], list[str]],
                 now: Callable[[], dt.datetime]) -> None:  # fmt: skip
        self._s = session
        self._calc = calc
        self._accounts = accounts
        self._now = now
        self._subs: dict[int, _Sub] = {}
        self._refreshed_at: dt.datetime | None = None

    def __bool__(self) -> bool:
        return bool(self._subs)

    def handle(self, req: object) -> bool:
        """Answer ``req`` if it is a P&L request; False otherwise."""
        if isinstance(req, (ReqPnL, ReqPnLSingle)):
            con_id = req.con_id if isinstance(req, ReqPnLSingle) else None
            if req.account not in self._accounts():
                self._s.error(req.req_id, 321, f"Error validating request:-'account {req.account!r} is not "
                              f"managed by this login (managed: {', '.join(self._accounts())})'")  # fmt: skip
                return True
            if req.req_id in self._subs:
                self._s.error(req.req_id, 322, f"Error processing request:-'Duplicate ticker id {req.req_id}'")
                return True
            self._subs[req.req_id] = sub = _Sub(req.account, con_id)
            log.debug("sim_pnl_subscribed", req_id=req.req_id, account=req.account, con_id=con_id)
            self._push(req.req_id, sub, force=True)
            return True
        if isinstance(req, (CancelPnL, CancelPnLSingle)):
            self._subs.pop(req.req_id, None)
            return True
        return False

    def clear(self) -> None:
        self._subs.clear()

    def updates(self, throttle: bool = True) -> list[M.Fields]:
        """Messages for the subscriptions whose figures changed since last sent (marked sent now);
        with ``throttle``, none if the last time-driven pass was under a simulated second ago."""
        now = self._now()
        if not self._subs:
            return []
        if throttle:
            if self._refreshed_at is not None and now - self._refreshed_at < MIN_INTERVAL:
                return []
            self._refreshed_at = now
        out: list[M.Fields] = []
        for req_id, sub in list(self._subs.items()):
            msg = self._message(req_id, sub, force=False)
            if msg is not None:
                out.append(msg)
        return out

    def refresh(self, throttle: bool = False) -> int:
        """Send the changed figures now (after a fill: unthrottled); returns how many were sent."""
        msgs = self.updates(throttle)
        for m in msgs:
            self._s.send(m)
        return len(msgs)

    def _push(self, req_id: int, sub: _Sub, force: bool = False) -> bool:
        msg = self._message(req_id, sub, force)
        if msg is None:
            return False
        self._s.send(msg)
        return True

    def _message(self, req_id: int, sub: _Sub, force: bool) -> M.Fields | None:
        now = self._now()
        if sub.con_id is None:
            f = self._calc.account(sub.account, now)
        else:
            f = self._calc.position(sub.account, sub.con_id, now)
        if not force and f == sub.sent:
            return None
        sub.sent = f
        if sub.con_id is None:
            return M.pnl(req_id, f.daily, f.unrealized, f.realized)
        return M.pnl_single(req_id, f.position, f.daily, f.unrealized, f.realized, f.value)
