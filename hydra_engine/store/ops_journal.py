"""Operator journal: what a person told the engine to do, and position changes nobody explained.

A row is written for every operator command (pause, resume, reset-peak, approve, rollback, flatten,
live confirmation) and for every unexplained position difference found when reconciling with the
broker, so the journal screen and ``hydra-tui journal`` can answer "who did what, when".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Mapping

import aiosqlite
import structlog

from hydra_engine.clock import Clock, from_iso, to_iso
from hydra_engine.store.lock import WriteGate

log = structlog.get_logger(__name__)


class OpsKind(StrEnum):
    COMMAND = "COMMAND"
    """An operator command (``command`` names it: pause, reset-peak...)."""
    POSITION_CHANGE = "POSITION_CHANGE"
    """The broker's position differs from what the journal explains."""
    SAFETY = "SAFETY"
    """Safety decisions: live confirmation, refusal, account checks."""
    NOTE = "NOTE"
    ALERT = "ALERT"
    """An operator alert (``command`` is its kind); ``detail.outcome`` says DELIVERED, SUPPRESSED
    (rate limit), FAILED (with the channel's error) or NO_CHANNEL (none configured)."""
    RETENTION = "RETENTION"
    """Housekeeping: what retention pruned (models' files, experiment folders, logs, backups) or a VACUUM."""


@dataclass(frozen=True, slots=True)
class OpsEntry:
    id: int
    at: datetime
    kind: str
    command: str
    actor: str
    message: str
    detail: Mapping[str, Any]


def dumps(detail: Mapping[str, Any] | None) -> str:
    """JSON for a detail mapping; dates and other objects become strings rather than failing."""
    return json.dumps(dict(detail or {}), default=str, sort_keys=True)


async def insert_entry(
    conn: aiosqlite.Connection,
    at: datetime,
    kind: str,
    message: str,
    *,
    command: str = "",
    actor: str = "",
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Insert one row on ``conn`` without committing (for use inside a caller's transaction)."""
    cur = await conn.execute(
        "INSERT INTO ops_journal (at, kind, command, actor, message, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (to_iso(at), str(kind), command, actor, message, dumps(detail)),
    )
    row_id = cur.lastrowid
    await cur.close()
    assert row_id is not None
    return int(row_id)


def _row(r: aiosqlite.Row | tuple[Any, ...]) -> OpsEntry:
    return OpsEntry(
        id=r[0], at=from_iso(r[1]), kind=r[2], command=r[3], actor=r[4], message=r[5], detail=json.loads(r[6])
    )


class OpsJournal:
    """The operator journal repository (table ``ops_journal``)."""

    def __init__(self, conn: aiosqlite.Connection, gate: WriteGate, clock: Clock) -> None:
        self._conn = conn
        self._gate = gate
        self._clock = clock

    async def record(
        self,
        kind: OpsKind | str,
        message: str,
        *,
        command: str = "",
        actor: str = "operator",
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Journal one entry now; returns its id."""
        async with self._gate.transaction() as conn:
            row_id = await insert_entry(
                conn, self._clock.now(), kind, message, command=command, actor=actor, detail=detail
            )
        log.info("ops_journalled", kind=str(kind), command=command, actor=actor, message=message)
        return row_id

    async def command(self, command: str, message: str = "", *, actor: str = "operator",
                      detail: Mapping[str, Any] | None = None) -> int:
        """Journal an operator command such as ``pause`` or ``approve``."""
        return await self.record(OpsKind.COMMAND, message or command, command=command, actor=actor, detail=detail)

    async def position_change(self, symbol: str, expected: float | None, actual: float | None,
                              detail: Mapping[str, Any] | None = None) -> int:
        """Journal an unexplained position difference (``None`` means unknown)."""
        body = {"symbol": symbol, "expected": expected, "actual": actual, **dict(detail or {})}
        msg = f"{symbol}: journal explains {expected}, broker reports {actual}"
        return await self.record(OpsKind.POSITION_CHANGE, msg, actor="reconciler", detail=body)

    async def recent(self, limit: int = 50, *, kind: OpsKind | str | None = None,
                     since: datetime | None = None) -> list[OpsEntry]:
        """Newest first."""
        sql = "SELECT id, at, kind, command, actor, message, detail FROM ops_journal WHERE 1=1"
        args: list[Any] = []
        if kind is not None:
            sql += " AND kind = ?"
            args.append(str(kind))
        if since is not None:
            sql += " AND at >= ?"
            args.append(to_iso(since))
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        async with self._conn.execute(sql, args) as cur:
            return [_row(r) for r in await cur.fetchall()]
