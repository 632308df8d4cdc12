"""Daily cycles: at most one per (market, trading date), claimed atomically through a UNIQUE key.

``claim`` is the only way to start a cycle, so duplicate triggers (scheduler + catch-up + force),
restarts and concurrent callers are harmless: exactly one caller gets True. A cycle left RUNNING
by an engine that died is reported by ``interrupted`` and can be taken over once with ``reclaim``
(orders move toward a target, so re-running the rest of a cycle does not pile up contracts).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Mapping

import aiosqlite

from hydra_engine.clock import Clock, from_iso, to_iso
from hydra_engine.store.lock import WriteGate
from hydra_engine.store.ops_journal import dumps


class CycleStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    INTERRUPTED = "INTERRUPTED"
    """Cut off by a crash and not resumed (its order session was over at the next start)."""


@dataclass(frozen=True, slots=True)
class CycleRecord:
    id: int
    market: str
    trading_date: date
    status: CycleStatus
    trigger: str
    attempts: int
    owner: str
    """``<pid>:<token>`` of the Store instance that runs/ran it."""
    started_at: datetime
    finished_at: datetime | None
    summary: Mapping[str, Any] | None


_COLS = "id, market, trading_date, status, trigger, attempts, owner, started_at, finished_at, summary"


def _record(r: Any) -> CycleRecord:
    return CycleRecord(
        id=r[0], market=r[1], trading_date=date.fromisoformat(r[2]), status=CycleStatus(r[3]), trigger=r[4],
        attempts=r[5], owner=r[6], started_at=from_iso(r[7]), finished_at=from_iso(r[8]) if r[8] else None,
        summary=json.loads(r[9]) if r[9] else None,
    )


class CycleRepo:
    """Repository over ``cycles``."""

    def __init__(self, conn: aiosqlite.Connection, gate: WriteGate, clock: Clock) -> None:
        self._conn = conn
        self._gate = gate
        self._clock = clock
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"

    async def claim(self, market: str, trading_date: date, trigger: str = "schedule") -> bool:
        """Start the cycle for (market, trading_date); False if it was already claimed by anyone."""
        async with self._gate.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO cycles (market, trading_date, status, trigger, owner, started_at) "
                "VALUES (?, ?, 'RUNNING', ?, ?, ?) ON CONFLICT (market, trading_date) DO NOTHING",
                (market, trading_date.isoformat(), trigger, self.owner, to_iso(self._clock.now())),
            )
            claimed = cur.rowcount == 1
            await cur.close()
        return claimed

    async def finish(
        self,
        market: str,
        trading_date: date,
        summary: Mapping[str, Any] | None = None,
        status: CycleStatus | str = CycleStatus.FINISHED,
    ) -> None:
        """Close the cycle with a JSON summary (FINISHED, FAILED, SKIPPED or INTERRUPTED)."""
        final = CycleStatus(status)
        if final == CycleStatus.RUNNING:
            raise ValueError("finish() needs FINISHED, FAILED, SKIPPED or INTERRUPTED, not RUNNING")
        async with self._gate.transaction() as conn:
            cur = await conn.execute(
                "UPDATE cycles SET status = ?, finished_at = ?, summary = ? WHERE market = ? AND trading_date = ?",
                (final.value, to_iso(self._clock.now()), dumps(summary), market, trading_date.isoformat()),
            )
            n = cur.rowcount
            await cur.close()
        if n == 0:
            raise LookupError(f"no cycle claimed for {market} on {trading_date.isoformat()}")

    async def get(self, market: str, trading_date: date) -> CycleRecord | None:
        async with self._conn.execute(
            f"SELECT {_COLS} FROM cycles WHERE market = ? AND trading_date = ?", (market, trading_date.isoformat())
        ) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def recent(self, limit: int = 20, market: str | None = None) -> list[CycleRecord]:
        """Newest trading date first."""
        sql = f"SELECT {_COLS} FROM cycles"
        args: list[Any] = []
        if market is not None:
            sql += " WHERE market = ?"
            args.append(market)
        sql += " ORDER BY trading_date DESC, id DESC LIMIT ?"
        args.append(int(limit))
        async with self._conn.execute(sql, args) as cur:
            return [_record(r) for r in await cur.fetchall()]

    async def latest_before(self, market: str, trading_date: date) -> CycleRecord | None:
        """The market's cycle with the latest trading date before ``trading_date`` (any status)."""
        async with self._conn.execute(
            f"SELECT {_COLS} FROM cycles WHERE market = ? AND trading_date < ? ORDER BY trading_date DESC LIMIT 1",
            (market, trading_date.isoformat()),
        ) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def last_finished(self, market: str) -> CycleRecord | None:
        async with self._conn.execute(
            f"SELECT {_COLS} FROM cycles WHERE market = ? AND status = 'FINISHED' "
            "ORDER BY trading_date DESC LIMIT 1",
            (market,),
        ) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def interrupted(self) -> list[CycleRecord]:
        """Cycles left RUNNING by another (dead) engine instance: the store lock rules out a live one."""
        async with self._conn.execute(
            f"SELECT {_COLS} FROM cycles WHERE status = 'RUNNING' AND owner != ? ORDER BY trading_date",
            (self.owner,),
        ) as cur:
            return [_record(r) for r in await cur.fetchall()]

    async def reclaim(self, market: str, trading_date: date, trigger: str = "recovery",
                      status: CycleStatus = CycleStatus.RUNNING) -> bool:
        """Take over a cycle atomically: an interrupted one (RUNNING under another owner) or, with
        ``status=SKIPPED``, one skipped for a lost connection. False if it is not in that state."""
        if status not in (CycleStatus.RUNNING, CycleStatus.SKIPPED):
            raise ValueError(f"reclaim: only RUNNING or SKIPPED cycles are taken over, not {status}")
        other_owner = " AND owner != ?" if status == CycleStatus.RUNNING else ""
        args: tuple[Any, ...] = (self.owner, trigger, to_iso(self._clock.now()), market, trading_date.isoformat(),
                                 status.value) + ((self.owner,) if other_owner else ())
        async with self._gate.transaction() as conn:
            cur = await conn.execute(
                "UPDATE cycles SET owner = ?, attempts = attempts + 1, trigger = ?, started_at = ?, status = 'RUNNING', "
                f"finished_at = NULL WHERE market = ? AND trading_date = ? AND status = ?{other_owner}", args)
            n = cur.rowcount
            await cur.close()
        return n == 1
