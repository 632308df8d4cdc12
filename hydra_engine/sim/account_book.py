"""The exchange's accounts by id, and their values at the current marks.

One part shared by the order book (fills), the client sessions (account requests), the marker
(periodic pushes) and the state file, so none of them reaches into the exchange for the dict.
Marks are cached per clock instant: every subscriber asked at one moment sees the same figures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from .account import Account, AccountSnapshot, PositionState
from .datafeed import DataFeed


class AccountBook:
    """Accounts managed by this login, by id (the mapping the order book books fills into)."""

    def __init__(self, accounts: dict[str, Account], feed: DataFeed, now: Callable[[], dt.datetime]) -> None:
        self.accounts = accounts
        """The live mapping (shared with ``OrderBook.accounts``); replaced entries stay in it."""
        self._feed = feed
        self._now = now
        self._marks_at: dt.datetime | None = None
        self._marks: dict[int, float | None] = {}

    def __contains__(self, account: object) -> bool:
        return account in self.accounts

    def __iter__(self) -> Iterator[Account]:
        return iter(list(self.accounts.values()))

    def get(self, account: str) -> Account:
        """The account ``account`` (KeyError when it is not managed here)."""
        return self.accounts[account]

    def restore(self, account: Account) -> bool:
        """Put a saved account in place of the managed one of that id; False when it is not managed."""
        if account.account_id not in self.accounts:
            return False
        self.accounts[account.account_id] = account
        return True

    def currency(self, account: str) -> str:
        a = self.accounts.get(account)
        return a.currency if a else "USD"

    def open_positions(self, account: str) -> dict[int, PositionState]:
        return {p.con_id: p for p in self.accounts[account].open_positions()}

    def snapshot(self, account: str) -> tuple[AccountSnapshot, dict[int, float]]:
        """Values of ``account`` at the current marks, and those marks by conId."""
        now = self._now()
        if self._marks_at != now:
            self._marks_at, self._marks = now, {}
        a = self.accounts[account]
        marks: dict[int, float] = {}
        for p in a.open_positions():
            if p.con_id not in self._marks:
                self._marks[p.con_id] = self._feed.mark(p.con_id, now)
            m = self._marks[p.con_id]
            if m is not None:
                marks[p.con_id] = m
        return a.snapshot(marks), marks
