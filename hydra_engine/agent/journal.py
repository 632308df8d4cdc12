"""The experiment journal: everything the agent saw, concluded, tried and decided, in the store.

Rows are appended and committed one by one, so a crash loses at most the entry being written.
Entries are queryable by trading date, type and outcome (the TUI's journal screen and
``hydra-tui journal`` read them); experiments also get a row of their own with their config diff,
metrics, duration, outcome and error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import aiosqlite
import structlog

log = structlog.get_logger(__name__)

ENTRY_TYPES = (
    "observation",
    "diagnosis",
    "hypothesis",
    "experiment",
    "decision",
    "rollback",
    "data_quality",
    "control",
    "error",
)
EXPERIMENT_STATUSES = ("RUNNING", "OK", "ERROR", "TIMEOUT", "ABANDONED")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, dataclasses with to_dict are expanded."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return _clean(value.to_dict())
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def dumps(value: Any) -> str:
    return json.dumps(_clean(value), sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal row. ``at`` is ISO UTC; ``payload`` the structured evidence."""

    id: int
    at: str
    trading_date: str | None
    cycle_id: str | None
    entry_type: str
    outcome: str
    summary: str
    payload: dict[str, Any]
    market: str = ""
    """Market (or group) the entry is about; '' for rows of the old single-champion schema."""


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    """One experiment as journalled. ``duration_s`` is wall time from submit to result."""

    experiment_id: str
    cycle_id: str | None
    trading_date: str | None
    hypothesis_key: str
    diagnosis: str
    config_diff: dict[str, Any]
    status: str
    outcome: str
    metrics: dict[str, Any]
    error: str | None
    log_path: str | None
    candidate_version: str | None
    started_at: str
    finished_at: str | None
    duration_s: float | None
    market: str = ""


class ExperimentJournal:
    """Repository over ``agent_journal`` and ``agent_experiments`` (migrations v004, v006)."""

    def __init__(self, conn: aiosqlite.Connection, write_gate: Any = None, market: str | None = None) -> None:
        """``write_gate``: the store's ``Store.tx`` when the connection is shared with other
        writers (its ``transaction()`` serialises them); without one each write commits itself.
        ``market``: one market's (or group's) journal: its rows are written with that market and
        only they are read; None: rows are written unassigned ('') and every market's are read."""
        self._conn = conn
        self._gate = write_gate
        self._market = market
        self._lock = asyncio.Lock()

    @property
    def market(self) -> str | None:
        return self._market

    async def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        if self._gate is not None:
            async with self._gate.transaction() as conn:
                cur = await conn.execute(sql, args)
                rowid = cur.lastrowid or 0
                await cur.close()
            return int(rowid)
        async with self._lock:
            cur = await self._conn.execute(sql, args)
            rowid = cur.lastrowid or 0
            await cur.close()
            await self._conn.commit()
            return int(rowid)

    async def record(
        self,
        entry_type: str,
        summary: str,
        *,
        trading_date: str | dt.date | None = None,
        cycle_id: str | None = None,
        outcome: str = "",
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one entry; returns its id."""
        if entry_type not in ENTRY_TYPES:
            raise ValueError(f"journal entry_type {entry_type!r} is not one of {list(ENTRY_TYPES)}")
        day = trading_date.isoformat() if isinstance(trading_date, dt.date) else trading_date
        rowid = await self._write(
            "INSERT INTO agent_journal (at, trading_date, cycle_id, entry_type, outcome, summary, payload, market) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (_now(), day, cycle_id, entry_type, outcome, summary, dumps(payload or {}), self._market or ""),
        )
        log.info("agent.journal", entry_type=entry_type, outcome=outcome, summary=summary, trading_date=day,
                 market=self._market or "")
        return rowid

    async def query(
        self,
        *,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        entry_type: str | None = None,
        outcome: str | None = None,
        cycle_id: str | None = None,
        limit: int = 200,
        market: str | None = None,
    ) -> list[JournalEntry]:
        """Entries oldest first; ``since``/``until`` are inclusive trading dates. ``market``: only
        that market's entries (a journal scoped to a market reads only its own anyway)."""
        if entry_type is not None and entry_type not in ENTRY_TYPES:
            raise ValueError(f"journal entry_type {entry_type!r} is not one of {list(ENTRY_TYPES)}")
        rows = await self._select(
            "SELECT id, at, trading_date, cycle_id, entry_type, outcome, summary, payload, market FROM agent_journal",
            (("trading_date >= ?", None if since is None else str(since)), ("trading_date <= ?", None if until is None else str(until)),
             ("entry_type = ?", entry_type), ("outcome = ?", outcome), ("cycle_id = ?", cycle_id),
             ("market = ?", self._market if self._market is not None else market)),
            "id", limit,
        )
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8]) for r in rows]

    async def start_experiment(
        self,
        experiment_id: str,
        hypothesis_key: str,
        *,
        diagnosis: str,
        config_diff: Mapping[str, Any],
        trading_date: str | None,
        cycle_id: str | None,
        log_path: str | None,
    ) -> None:
        """Write the RUNNING row before the subprocess starts, so a crash leaves a trace."""
        await self._write(
            "INSERT INTO agent_experiments (experiment_id, cycle_id, trading_date, hypothesis_key, diagnosis, "
            "config_diff, status, log_path, started_at, market) VALUES (?, ?, ?, ?, ?, ?, 'RUNNING', ?, ?, ?)",
            (experiment_id, cycle_id, trading_date, hypothesis_key, diagnosis, dumps(config_diff), log_path, _now(),
             self._market or ""),
        )

    async def finish_experiment(
        self,
        experiment_id: str,
        *,
        status: str,
        outcome: str,
        metrics: Mapping[str, Any] | None,
        error: str | None,
        duration_s: float | None,
        candidate_version: str | None = None,
    ) -> None:
        if status not in EXPERIMENT_STATUSES:
            raise ValueError(f"experiment status {status!r} is not one of {list(EXPERIMENT_STATUSES)}")
        await self._write(
            "UPDATE agent_experiments SET status = ?, outcome = ?, metrics = ?, error = ?, duration_s = ?, "
            "candidate_version = COALESCE(?, candidate_version), finished_at = ? WHERE experiment_id = ?",
            (status, outcome, dumps(metrics or {}), error, duration_s, candidate_version, _now(), experiment_id),
        )

    async def set_experiment_outcome(self, experiment_id: str, outcome: str, candidate_version: str | None = None) -> None:
        """Later verdicts (promoted after approval, rejected by the operator) update the row."""
        await self._write(
            "UPDATE agent_experiments SET outcome = ?, candidate_version = COALESCE(?, candidate_version) "
            "WHERE experiment_id = ?",
            (outcome, candidate_version, experiment_id),
        )

    async def experiments(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        status: str | None = None,
        outcome: str | None = None,
        limit: int = 200,
        market: str | None = None,
    ) -> list[ExperimentRow]:
        """Experiments oldest first, filtered by trading date range, status, outcome and market."""
        rows = await self._select(
            "SELECT experiment_id, cycle_id, trading_date, hypothesis_key, diagnosis, config_diff, status, outcome, "
            "metrics, error, log_path, candidate_version, started_at, finished_at, duration_s, market FROM agent_experiments",
            (("trading_date >= ?", since), ("trading_date <= ?", until), ("status = ?", status), ("outcome = ?", outcome),
             ("market = ?", self._market if self._market is not None else market)),
            "started_at", limit,
        )
        return [
            ExperimentRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], json.loads(r[8]), r[9], r[10], r[11], r[12], r[13], r[14],
                          r[15])
            for r in rows
        ]

    async def _select(self, sql: str, filters: tuple[tuple[str, Any], ...], newest_by: str, limit: int) -> list[Any]:
        """The newest ``limit`` rows matching every filter whose value is not None, oldest first."""
        where = [(cond, val) for cond, val in filters if val is not None]
        if where:
            sql += " WHERE " + " AND ".join(cond for cond, _ in where)
        sql += f" ORDER BY {newest_by} DESC LIMIT ?"
        async with self._conn.execute(sql, [val for _, val in where] + [int(limit)]) as cur:
            rows = list(await cur.fetchall())
        return rows[::-1]

    async def mark_interrupted(self) -> int:
        """At start-up: experiments left RUNNING by a crash become ABANDONED (journalled)."""
        sql = "SELECT experiment_id FROM agent_experiments WHERE status = 'RUNNING'"
        args: tuple[Any, ...] = ()
        if self._market is not None:
            sql, args = sql + " AND market = ?", (self._market,)
        async with self._conn.execute(sql, args) as cur:
            ids = [r[0] for r in await cur.fetchall()]
        for eid in ids:
            await self.finish_experiment(eid, status="ABANDONED", outcome="interrupted", metrics=None,
                                         error="engine stopped while the experiment ran", duration_s=None)
            await self.record("experiment", f"experiment {eid} abandoned after a restart", outcome="abandoned",
                              payload={"experiment_id": eid})
        return len(ids)
