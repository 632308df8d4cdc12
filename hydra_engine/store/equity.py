"""Equity marks and the persisted peak.

Daily P&L is net liquidation minus the previous trading date's closing mark, so the closing mark of
every trading date is kept. The peak (for the drawdown breaker) is persisted so a restart cannot
forget a drawdown; it only rises, except through ``reset_peak``: an operator command (a deposit, a
paper-account reset) that is journalled in the same transaction as the change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import aiosqlite
import structlog

from hydra_engine.clock import Clock, from_iso, to_iso
from hydra_engine.store.lock import WriteGate
from hydra_engine.store.ops_journal import OpsKind, insert_entry

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EquityMark:
    """Closing net liquidation of one trading date, in ``currency``."""

    trading_date: date
    net_liquidation: float
    currency: str
    source: str
    marked_at: datetime


@dataclass(frozen=True, slots=True)
class PeakRecord:
    """The equity peak in account currency and why it was last set."""

    peak: float
    trading_date: date | None
    reason: str
    updated_at: datetime


def _mark(r: Any) -> EquityMark:
    return EquityMark(date.fromisoformat(r[0]), r[1], r[2], r[3], from_iso(r[4]))


def _check_amount(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} = {value}: must be a positive, finite amount")
    return v


_MARK_COLS = "trading_date, net_liquidation, currency, source, marked_at"


class EquityRepo:
    """Repository over ``equity_marks`` and ``equity_peak``."""

    def __init__(self, conn: aiosqlite.Connection, gate: WriteGate, clock: Clock) -> None:
        self._conn = conn
        self._gate = gate
        self._clock = clock

    async def record_mark(
        self,
        trading_date: date,
        net_liquidation: float,
        *,
        currency: str = "USD",
        source: str = "close",
        update_peak: bool = True,
    ) -> EquityMark:
        """Set the closing mark of ``trading_date`` (a later mark for the same date replaces it)."""
        nlv = float(net_liquidation)
        if not math.isfinite(nlv):
            raise ValueError(f"net_liquidation = {net_liquidation}: must be finite")
        now = self._clock.now()
        async with self._gate.transaction() as conn:
            await conn.execute(
                "INSERT INTO equity_marks (trading_date, net_liquidation, currency, source, marked_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (trading_date) DO UPDATE SET "
                "net_liquidation = excluded.net_liquidation, currency = excluded.currency, "
                "source = excluded.source, marked_at = excluded.marked_at",
                (trading_date.isoformat(), nlv, currency, source, to_iso(now)),
            )
            if update_peak and nlv > 0:
                await self._raise_peak(conn, nlv, trading_date, now)
        return EquityMark(trading_date, nlv, currency, source, now)

    async def mark_for(self, trading_date: date) -> EquityMark | None:
        async with self._conn.execute(
            f"SELECT {_MARK_COLS} FROM equity_marks WHERE trading_date = ?", (trading_date.isoformat(),)
        ) as cur:
            row = await cur.fetchone()
        return _mark(row) if row else None

    async def previous_mark(self, trading_date: date) -> EquityMark | None:
        """The latest mark strictly before ``trading_date`` (the base of today's P&L)."""
        async with self._conn.execute(
            f"SELECT {_MARK_COLS} FROM equity_marks WHERE trading_date < ? ORDER BY trading_date DESC LIMIT 1",
            (trading_date.isoformat(),),
        ) as cur:
            row = await cur.fetchone()
        return _mark(row) if row else None

    async def latest_mark(self) -> EquityMark | None:
        async with self._conn.execute(
            f"SELECT {_MARK_COLS} FROM equity_marks ORDER BY trading_date DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
        return _mark(row) if row else None

    async def marks(self, since: date | None = None, limit: int | None = None) -> list[EquityMark]:
        """Oldest first; with ``limit`` the most recent ``limit`` marks (for the sparkline)."""
        sql = f"SELECT {_MARK_COLS} FROM equity_marks"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE trading_date >= ?"
            args.append(since.isoformat())
        sql += " ORDER BY trading_date DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        async with self._conn.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [_mark(r) for r in reversed(list(rows))]

    async def peak(self) -> PeakRecord | None:
        async with self._conn.execute(
            "SELECT peak, trading_date, reason, updated_at FROM equity_peak WHERE id = 1"
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return PeakRecord(row[0], date.fromisoformat(row[1]) if row[1] else None, row[2], from_iso(row[3]))

    async def _raise_peak(self, conn: aiosqlite.Connection, equity: float, trading_date: date | None,
                          now: datetime) -> None:
        await conn.execute(
            "INSERT INTO equity_peak (id, peak, trading_date, reason, updated_at) VALUES (1, ?, ?, 'new high', ?) "
            "ON CONFLICT (id) DO UPDATE SET peak = excluded.peak, trading_date = excluded.trading_date, "
            "reason = excluded.reason, updated_at = excluded.updated_at WHERE excluded.peak > equity_peak.peak",
            (equity, trading_date.isoformat() if trading_date else None, to_iso(now)),
        )

    async def update_peak(self, equity: float, trading_date: date | None = None) -> PeakRecord:
        """Raise the peak to ``equity`` if it is higher (or set it the first time); returns the peak."""
        value = _check_amount("equity", equity)
        async with self._gate.transaction() as conn:
            await self._raise_peak(conn, value, trading_date, self._clock.now())
        rec = await self.peak()
        assert rec is not None
        return rec

    async def reset_peak(self, new_peak: float, reason: str, *, actor: str = "operator") -> PeakRecord:
        """Set the peak to ``new_peak`` (up or down) and journal the command in the same transaction."""
        value = _check_amount("new_peak", new_peak)
        if not reason or not reason.strip():
            raise ValueError("reset_peak needs a reason (e.g. 'deposit' or 'paper account reset')")
        now = self._clock.now()
        async with self._gate.transaction() as conn:
            old = await self.peak()
            await conn.execute(
                "INSERT INTO equity_peak (id, peak, trading_date, reason, updated_at) VALUES (1, ?, NULL, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET peak = excluded.peak, trading_date = NULL, "
                "reason = excluded.reason, updated_at = excluded.updated_at",
                (value, f"reset: {reason}", to_iso(now)),
            )
            await insert_entry(
                conn, now, OpsKind.COMMAND, f"equity peak reset to {value:.2f}: {reason}",
                command="reset-peak", actor=actor,
                detail={"old_peak": old.peak if old else None, "new_peak": value, "reason": reason},
            )
        log.info("equity_peak_reset", old_peak=old.peak if old else None, new_peak=value, reason=reason, actor=actor)
        return PeakRecord(value, None, f"reset: {reason}", now)
