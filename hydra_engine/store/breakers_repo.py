"""Persistence for the risk breakers and the daily order counts (tables from v002).

The records live here, below the risk layer, so ``store`` never imports ``risk``. Dates are ISO
dates (trading dates, exchange local); ``updated_at`` is ISO-8601 UTC.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable

import aiosqlite

BREAKER_STATES = ("ACTIVE", "TRIGGERED", "COOLDOWN")


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    """One breaker's persisted state; ``cooldown_remaining`` counts trading days."""

    name: str
    state: str = "ACTIVE"
    triggered_at: dt.date | None = None
    """Trading date it last tripped."""
    cooldown_remaining: int = 0
    reason: str = ""
    last_day: dt.date | None = None
    """Last trading date its cooldown was ticked for (a day ticks once)."""

    def __post_init__(self) -> None:
        if self.state not in BREAKER_STATES:
            raise ValueError(f"breaker {self.name}: state={self.state!r} must be one of {BREAKER_STATES}")
        if self.cooldown_remaining < 0:
            raise ValueError(f"breaker {self.name}: cooldown_remaining={self.cooldown_remaining} must be >= 0")


@dataclass(frozen=True, slots=True)
class OrderCount:
    """Orders approved on one trading date (``reprices`` is the subset that were reprices)."""

    trading_date: dt.date
    orders: int = 0
    reprices: int = 0


def _d(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


class BreakersRepo:
    """Reads and writes ``breaker_state`` and ``risk_order_counts`` on the shared connection.

    ``tx`` is the Store's ``WriteGate`` when there is one (its ``transaction()`` serialises writers
    on the shared connection); without it each write batch commits on its own.
    """

    def __init__(self, conn: aiosqlite.Connection, tx: Any = None) -> None:
        self._conn = conn
        self._tx = tx

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._tx is not None:
            async with self._tx.transaction() as conn:
                yield conn
            return
        await self._conn.execute("SAVEPOINT breakers_repo")
        try:
            yield self._conn
        except BaseException:
            await self._conn.execute("ROLLBACK TO breakers_repo")
            await self._conn.execute("RELEASE breakers_repo")
            raise
        await self._conn.execute("RELEASE breakers_repo")
        await self._conn.commit()

    async def load_breakers(self) -> dict[str, BreakerRecord]:
        async with self._conn.execute(
            "SELECT name, state, triggered_at, cooldown_remaining, reason, last_day FROM breaker_state"
        ) as cur:
            rows = await cur.fetchall()
        return {
            r[0]: BreakerRecord(r[0], r[1], _d(r[2]), int(r[3]), r[4] or "", _d(r[5])) for r in rows
        }

    async def save(self, breakers: Iterable[BreakerRecord] = (), counts: Iterable[OrderCount] = ()) -> None:
        """Upsert breakers and order counts in one committed transaction."""
        now = _now()
        b_rows = [
            (b.name, b.state, b.triggered_at.isoformat() if b.triggered_at else None, b.cooldown_remaining,
             b.reason, b.last_day.isoformat() if b.last_day else None, now)
            for b in breakers
        ]
        c_rows = [(c.trading_date.isoformat(), c.orders, c.reprices, now) for c in counts]
        if not b_rows and not c_rows:
            return
        async with self._transaction() as conn:
            if b_rows:
                await conn.executemany(
                    "INSERT INTO breaker_state (name, state, triggered_at, cooldown_remaining, reason, last_day, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "state = excluded.state, triggered_at = excluded.triggered_at, "
                    "cooldown_remaining = excluded.cooldown_remaining, reason = excluded.reason, "
                    "last_day = excluded.last_day, updated_at = excluded.updated_at",
                    b_rows,
                )
            if c_rows:
                await conn.executemany(
                    "INSERT INTO risk_order_counts (trading_date, orders, reprices, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (trading_date) DO UPDATE SET orders = excluded.orders, "
                    "reprices = excluded.reprices, updated_at = excluded.updated_at",
                    c_rows,
                )

    async def order_count(self, trading_date: dt.date) -> OrderCount:
        async with self._conn.execute(
            "SELECT orders, reprices FROM risk_order_counts WHERE trading_date = ?", (trading_date.isoformat(),)
        ) as cur:
            row = await cur.fetchone()
        return OrderCount(trading_date, int(row[0]), int(row[1])) if row else OrderCount(trading_date)

    async def latest_order_count(self) -> OrderCount | None:
        """The most recent trading date with a count (the gate resumes from it after a restart)."""
        async with self._conn.execute(
            "SELECT trading_date, orders, reprices FROM risk_order_counts ORDER BY trading_date DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
        return OrderCount(dt.date.fromisoformat(row[0]), int(row[1]), int(row[2])) if row else None
