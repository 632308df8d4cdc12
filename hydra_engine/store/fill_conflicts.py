"""Conflicting fills: an alarm per market that stops its trading until an operator clears it.

A broker report under an execId already journalled with a different contract, quantity, price or
side means the store and the broker disagree about what was traded. The fill journal writes the
alarm (table ``fill_conflicts``, migration v009, plus an ``ops_journal`` entry of kind
``FILL_CONFLICT``) in the transaction that found it; the execution desk asks ``blocked`` before it
sends orders for a market; ``status`` reads ``open_conflicts``; an operator ends it with ``clear``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

import aiosqlite
import structlog

from hydra_engine.clock import Clock, from_iso, to_iso
from hydra_engine.store.lock import WriteGate
from hydra_engine.store.ops_journal import insert_entry

log = structlog.get_logger(__name__)

FILL_CONFLICT_KIND = "FILL_CONFLICT"
"""``ops_journal.kind`` of an alarm (and of its clearing, with ``command='clear-fill-conflict'``)."""

_COLS = "id, exec_id, symbol, detected_at, differences, journalled, reported, cleared_at, cleared_by, note"


@dataclass(frozen=True, slots=True)
class FillConflict:
    """One conflicting report: ``journalled`` is the fill in the store, ``reported`` the new one."""

    id: int
    exec_id: str
    symbol: str
    detected_at: datetime
    differences: tuple[str, ...]
    """Fields that differ: symbol, contract_month, direction, qty, fill_price."""
    journalled: Mapping[str, Any]
    reported: Mapping[str, Any]
    cleared_at: datetime | None
    cleared_by: str
    note: str

    @property
    def open(self) -> bool:
        return self.cleared_at is None


def _conflict(r: Any) -> FillConflict:
    return FillConflict(id=r[0], exec_id=r[1], symbol=r[2], detected_at=from_iso(r[3]),
                        differences=tuple(json.loads(r[4])), journalled=json.loads(r[5]),
                        reported=json.loads(r[6]), cleared_at=from_iso(r[7]) if r[7] else None,
                        cleared_by=r[8], note=r[9])


class FillConflicts:
    """Repository over ``fill_conflicts`` (writes of new alarms come from the fill journal)."""

    def __init__(self, conn: aiosqlite.Connection, gate: WriteGate, clock: Clock) -> None:
        self._conn = conn
        self._gate = gate
        self._clock = clock

    async def open_conflicts(self, symbol: str | None = None) -> list[FillConflict]:
        """Alarms not cleared yet, oldest first (optionally of one market)."""
        sql = f"SELECT {_COLS} FROM fill_conflicts WHERE cleared_at IS NULL"
        args: tuple[Any, ...] = ()
        if symbol is not None:
            sql, args = sql + " AND symbol = ?", (symbol,)
        async with self._conn.execute(sql + " ORDER BY id", args) as cur:
            return [_conflict(r) for r in await cur.fetchall()]

    async def all(self, limit: int = 100) -> list[FillConflict]:
        """Every alarm, cleared or not, newest first."""
        async with self._conn.execute(f"SELECT {_COLS} FROM fill_conflicts ORDER BY id DESC LIMIT ?",
                                      (int(limit),)) as cur:
            return [_conflict(r) for r in await cur.fetchall()]

    async def blocked_markets(self) -> set[str]:
        """Markets whose trading waits on an open alarm."""
        async with self._conn.execute("SELECT DISTINCT symbol FROM fill_conflicts WHERE cleared_at IS NULL") as cur:
            return {r[0] for r in await cur.fetchall()}

    async def blocked(self, symbol: str) -> bool:
        async with self._conn.execute(
            "SELECT 1 FROM fill_conflicts WHERE symbol = ? AND cleared_at IS NULL LIMIT 1", (symbol,)
        ) as cur:
            return await cur.fetchone() is not None

    async def record_correction(self, original: Mapping[str, Any], correction: Mapping[str, Any],
                                differences: list[str]) -> int:
        """IB corrected a fill (a new execId for it) and the correction changes what was journalled:
        the journalled fill stays and an alarm holds the market's trading until an operator checks
        it against the broker (the same alarm as a conflicting report under a known execId)."""
        now = self._clock.now()
        symbol = str(original.get("symbol", ""))
        async with self._gate.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO fill_conflicts (exec_id, symbol, detected_at, differences, journalled, reported) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (str(correction.get("exec_id", "")), symbol, to_iso(now), json.dumps(differences),
                 json.dumps(dict(original), default=str), json.dumps(dict(correction), default=str)))
            row_id = int(cur.lastrowid or 0)
            await cur.close()
            await insert_entry(conn, now, FILL_CONFLICT_KIND,
                               f"{symbol}: execution {original.get('exec_id')} corrected as {correction.get('exec_id')} "
                               f"with {', '.join(differences)} changed; trading waits until it is checked and cleared",
                               actor="broker", detail={"original": dict(original), "correction": dict(correction),
                                                       "differences": differences})
        log.warning("fill_conflict.correction", symbol=symbol, original=original.get("exec_id"),
                    correction=correction.get("exec_id"), differences=differences)
        return row_id

    async def clear(self, symbol: str, *, actor: str = "operator", note: str = "") -> int:
        """Clear every open alarm of ``symbol`` (journalled); returns how many were cleared."""
        now = self._clock.now()
        async with self._gate.transaction() as conn:
            cur = await conn.execute(
                "UPDATE fill_conflicts SET cleared_at = ?, cleared_by = ?, note = ? "
                "WHERE symbol = ? AND cleared_at IS NULL", (to_iso(now), actor, note, symbol))
            n = int(cur.rowcount or 0)
            await cur.close()
            if n:
                await insert_entry(conn, now, FILL_CONFLICT_KIND,
                                   f"{symbol}: {n} conflicting-fill alarm(s) cleared; trading may resume",
                                   command="clear-fill-conflict", actor=actor,
                                   detail={"symbol": symbol, "cleared": n, "note": note})
        log.warning("fill_conflict.cleared", symbol=symbol, cleared=n, actor=actor)
        return n
