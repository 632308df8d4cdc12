"""Marking open positions to market between fills, as IB's account subscriptions do.

IB pushes account values, portfolio values and the account time to a ``reqAccountUpdates``
subscriber every few minutes while it is subscribed (account summary and multi subscriptions
refresh too), not only after a fill. Without that a client's net liquidation stays flat while
positions move, and loss and drawdown limits never see open-position losses.

The exchange calls ``AccountMarker.on_time`` whenever its clock has been played forward. It first
streams the P&L subscriptions (``pnl_streams``) whose figures moved, at most once per simulated
second, through ``publish`` (behind any message still waiting for its state to be saved). A mark is
due once ``MARK_INTERVAL`` of simulated time has passed since the last one, or as soon as a held
market's session has closed since then (the daily settlement mark). A long lock-step jump marks
once, at its end, never at every intermediate interval. Each subscription is sent only what
changed since it was last sent (``ClientSession.refresh_account_subscriptions``, which remembers it
per subscription).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable
from functools import partial

from .account_book import AccountBook
from .client_registry import ClientRegistry
from .datafeed import DataFeed
from .market_types import MarketUniverse

MARK_INTERVAL = dt.timedelta(minutes=3)
"""IB's cadence for unsolicited account and portfolio updates (simulated time)."""


class AccountMarker:
    """Decides when the accounts are re-marked and pushes the new values to subscribers."""

    def __init__(self, accounts: AccountBook, clients: ClientRegistry, universe: MarketUniverse, feed: DataFeed,
                 now: dt.datetime, publish: Callable[[Callable[[], None]], None] | None = None) -> None:  # fmt: skip
        self._publish = publish or (lambda send: send())
        """Runs a send now, or behind the messages held until their state is saved."""
        self._accounts = accounts
        self._clients = clients
        self._universe = universe
        self._feed = feed
        self.marked_at = now
        """Simulated time of the last periodic mark."""
        self.marks_pushed = 0
        """Subscriptions refreshed so far (a figure for tests and benchmarks)."""

    def _held_symbols(self) -> set[str]:
        out: set[str] = set()
        for a in self._accounts:
            for p in a.open_positions():
                m = self._universe.month(p.con_id)
                if m is not None:
                    out.add(m.symbol)
        return out

    def _due(self, t: dt.datetime, symbols: set[str]) -> bool:
        if t - self.marked_at >= MARK_INTERVAL:
            return True
        for sym in symbols:  # a settlement since the last mark: mark now, whatever the interval
            b = self._feed.current_or_next_session(sym, self.marked_at)
            if b is not None and b[1] <= t:
                return True
        return False

    def stream_pnl(self) -> int:
        """Queue the P&L updates each connection's subscriptions are owed; returns how many."""
        n = 0
        for s in self._clients.started():
            if s.closed or not s.pnl:
                continue
            msgs = s.pnl.updates(throttle=True)  # figures of now, sent once the state is saved
            if msgs:
                n += len(msgs)
                self._publish(partial(s.send_later, 0.0, msgs))
        return n

    def on_time(self, t: dt.datetime) -> int:
        """The clock reached ``t``: stream P&L, re-mark when due; returns the subscriptions refreshed."""
        self.stream_pnl()
        if t <= self.marked_at:
            return 0
        sessions = [s for s in self._clients.started() if not s.closed and s.has_account_subscriptions()]
        if not sessions:
            self.marked_at = t  # nobody listens: nothing owed
            return 0
        symbols = self._held_symbols()
        if not symbols:
            # Flat accounts: values move only on fills, which push themselves.
            self.marked_at = t
            return 0
        if not self._due(t, symbols):
            return 0
        self.marked_at = t
        n = sum(s.refresh_account_subscriptions() for s in sessions)
        self.marks_pushed += n
        return n


def snapshot_key(snap: Hashable, marks: dict[int, float]) -> tuple:
    """What a subscriber has seen: the account values plus each position's mark."""
    return (snap, tuple(sorted(marks.items())))
