"""The operator-request inbox: how a command in another process reaches the engine on its store.

``hydra-tui pause`` (and approve, rollback, resume, reset-peak, flatten) cannot call the running
engine's methods, so it writes a row into ``operator_requests`` (migration v008) and waits. Its
arguments travel as JSON: ``reason``, ``to`` (reset-peak) and ``market`` (approve and rollback:
whose champion, when each market has its own). The
engine's ``OperatorInbox`` polls the table about once a second on its own loop, executes each
request through the Engine's operator methods, journals it with the requester's actor and writes
the outcome back. The same poller rewrites ``engine_status`` every few seconds, so ``hydra-tui
status`` sees what the engine sees (and a stale heartbeat means the engine is gone). The submit and
read helpers use their own short connection, never the engine's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

import aiosqlite
import structlog

from hydra_engine.clock import to_iso

log = structlog.get_logger(__name__)

COMMANDS = ("pause", "resume", "approve", "rollback", "reset-peak", "flatten")
POLL_INTERVAL_S = 1.0
SNAPSHOT_INTERVAL_S = 3.0
STALE_AFTER_S = 15.0
"""A snapshot older than this (wall time) means the engine that wrote it no longer runs."""


@dataclass(frozen=True, slots=True)
class OperatorRequest:
    """One row of ``operator_requests``; times ISO UTC (wall clock)."""

    id: int
    created_at: str
    command: str
    args: Mapping[str, Any]
    actor: str
    status: str
    """PENDING, RUNNING, DONE or FAILED."""
    outcome: str
    finished_at: str | None


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """The running engine's view, as last written to ``engine_status``."""

    written_at: dt.datetime
    pid: int
    data: Mapping[str, Any]

    def age_s(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.timezone.utc)
        return max(0.0, (now - self.written_at).total_seconds())


class OperatorEngine(Protocol):
    """What the inbox needs of the engine (the Engine satisfies it)."""

    store: Any
    runner: Any
    agent: Any
    risk_gate: Any

    def status(self) -> Any: ...
    async def approve(self, market: str | None = None) -> str: ...
    async def rollback(self, reason: str, market: str | None = None) -> str: ...
    async def flatten(self) -> list[asyncio.Task[Any]]: ...
    async def reset_peak(self, new_peak: float | None = None, reason: str = "operator reset") -> float: ...


def _wall_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, dates and mappings as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def _row(r: Any) -> OperatorRequest:
    return OperatorRequest(int(r[0]), r[1], r[2], json.loads(r[3] or "{}"), r[4], r[5], r[6], r[7])


_SELECT = "SELECT id, created_at, command, args, actor, status, outcome, finished_at FROM operator_requests"


# ------------------------------------------------------------------------- command side (other process)


async def _connect(db_path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(db_path)
    await conn.execute("PRAGMA busy_timeout = 5000")
    return conn


async def submit(db_path: Path, command: str, args: Mapping[str, Any] | None = None, *, actor: str = "operator") -> int:
    """Write a PENDING request into the store at ``db_path``; returns its id."""
    if command not in COMMANDS:
        raise ValueError(f"operator request {command!r} is not one of {list(COMMANDS)}")
    conn = await _connect(db_path)
    try:
        cur = await conn.execute(
            "INSERT INTO operator_requests (created_at, command, args, actor) VALUES (?, ?, ?, ?)",
            (to_iso(_wall_now()), command, json.dumps(dict(args or {}), default=str), actor))
        rid = int(cur.lastrowid or 0)
        await cur.close()
        await conn.commit()
        return rid
    finally:
        await conn.close()


async def get_request(db_path: Path, request_id: int) -> OperatorRequest | None:
    conn = await _connect(db_path)
    try:
        async with conn.execute(_SELECT + " WHERE id = ?", (request_id,)) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None
    finally:
        await conn.close()


async def wait_outcome(db_path: Path, request_id: int, timeout_s: float = 10.0,
                       interval_s: float = 0.2) -> OperatorRequest | None:
    """The request once DONE or FAILED, or None when the engine did not finish it in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        req = await get_request(db_path, request_id)
        if req is not None and req.status in ("DONE", "FAILED"):
            return req
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(interval_s)


async def withdraw(db_path: Path, request_id: int) -> bool:
    """Cancel a request still PENDING (the command gave up waiting); False if the engine took it."""
    conn = await _connect(db_path)
    try:
        cur = await conn.execute(
            "UPDATE operator_requests SET status = 'FAILED', outcome = 'withdrawn: no engine picked it up in time', "
            "finished_at = ? WHERE id = ? AND status = 'PENDING'", (to_iso(_wall_now()), request_id))
        n = cur.rowcount
        await cur.close()
        await conn.commit()
        return n > 0
    finally:
        await conn.close()


async def read_snapshot(conn: aiosqlite.Connection) -> StatusSnapshot | None:
    """The last status snapshot in the store (None before any engine wrote one)."""
    try:
        async with conn.execute("SELECT written_at, pid, snapshot FROM engine_status WHERE singleton = 0") as cur:
            row = await cur.fetchone()
    except aiosqlite.OperationalError:  # a store from before v008
        return None
    if row is None:
        return None
    at = dt.datetime.fromisoformat(str(row[0]).replace("Z", "+00:00"))
    return StatusSnapshot(at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc), int(row[1]), json.loads(row[2]))


# ------------------------------------------------------------------------- engine side


def snapshot_of(engine: OperatorEngine) -> dict[str, Any]:
    """What ``status`` and ``diagnose`` show: the engine's status, breakers, agent detectors."""
    data: dict[str, Any] = {"engine": jsonable(engine.status()), "stopped": False}
    gate = engine.risk_gate
    if gate is not None:
        snap = gate.snapshot()
        data["risk"] = {"trading_state": jsonable(snap.trading_state), "orders_today": snap.orders_today,
                        "max_orders_per_day": snap.max_orders_per_day, "daily_pnl_stale": snap.daily_pnl_stale,
                        "persist_error": snap.persist_error, "breakers": jsonable(snap.breakers)}
    agent = engine.agent
    if agent is not None:
        try:
            data["agent"] = jsonable(agent.status())
        except Exception as exc:  # noqa: BLE001 - the rest of the snapshot is still worth writing
            data["agent"] = {"error": f"{type(exc).__name__}: {exc}"}
    runner = engine.runner
    if runner is not None:
        data["pause_reason"] = getattr(runner, "pause_reason", None) if runner.paused else None
    return data


class OperatorInbox:
    """Polls ``operator_requests`` on the engine's loop and rewrites ``engine_status``."""

    def __init__(self, engine: OperatorEngine, *, interval_s: float = POLL_INTERVAL_S,
                 snapshot_interval_s: float = SNAPSHOT_INTERVAL_S) -> None:
        self._engine = engine
        self._interval = interval_s
        self._snapshot_interval = snapshot_interval_s
        self._task: asyncio.Task[None] | None = None
        self._last_snapshot = 0.0
        self.handled = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="operator-inbox")

    async def stop(self) -> None:
        """Stop polling; the last snapshot says the engine stopped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            try:
                await self.write_snapshot(stopped=True)
            except Exception:  # noqa: BLE001 - a closed store at shutdown is not worth failing for
                log.warning("operator_inbox.final_snapshot_failed", exc_info=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.poll_once()
                if loop.time() - self._last_snapshot >= self._snapshot_interval:
                    self._last_snapshot = loop.time()
                    await self.write_snapshot()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the poller must outlive one bad round
                log.exception("operator_inbox.poll_failed")
            await asyncio.sleep(self._interval)

    async def write_snapshot(self, *, stopped: bool = False) -> None:
        store = self._engine.store
        if store is None or store.closed:
            return
        data = snapshot_of(self._engine)
        data["stopped"] = stopped
        async with store.tx.transaction() as conn:
            await conn.execute(
                "INSERT INTO engine_status (singleton, written_at, pid, snapshot) VALUES (0, ?, ?, ?) "
                "ON CONFLICT(singleton) DO UPDATE SET written_at = excluded.written_at, pid = excluded.pid, "
                "snapshot = excluded.snapshot", (to_iso(_wall_now()), os.getpid(), json.dumps(data, default=str)))

    async def poll_once(self) -> int:
        """Execute every PENDING request, oldest first; returns how many were handled."""
        store = self._engine.store
        async with store.conn.execute(_SELECT + " WHERE status = 'PENDING' ORDER BY id") as cur:
            pending = [_row(r) for r in await cur.fetchall()]
        n = 0
        for req in pending:
            async with store.tx.transaction() as conn:
                cur = await conn.execute("UPDATE operator_requests SET status = 'RUNNING' WHERE id = ? AND status = 'PENDING'",
                                         (req.id,))
                claimed = cur.rowcount > 0
                await cur.close()
            if not claimed:  # withdrawn meanwhile
                continue
            status, outcome = "DONE", ""
            try:
                outcome = await self._execute(req)
            except Exception as exc:  # noqa: BLE001 - the outcome tells the operator why
                status, outcome = "FAILED", f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
                log.warning("operator_request.failed", id=req.id, command=req.command, error=outcome)
            await store.ops.command(req.command, f"{req.command} (request {req.id}): {outcome}", actor=req.actor,
                                    detail={"request": req.id, "status": status, "args": dict(req.args)})
            async with store.tx.transaction() as conn:
                await conn.execute("UPDATE operator_requests SET status = ?, outcome = ?, finished_at = ? WHERE id = ?",
                                   (status, outcome, to_iso(_wall_now()), req.id))
            log.info("operator_request.done", id=req.id, command=req.command, actor=req.actor, status=status,
                     outcome=outcome)
            n += 1
            self.handled += 1
        if n:
            await self.write_snapshot()  # status shows the change at once
        return n

    async def _execute(self, req: OperatorRequest) -> str:
        e, a = self._engine, req.args
        if req.command == "pause":
            reason = str(a.get("reason") or "operator")
            await e.runner.pause(reason, actor=req.actor)
            return f"paused ({reason}): no new orders or experiments; observation continues"
        if req.command == "resume":
            await e.runner.resume(actor=req.actor)
            return "resumed: trading and experiments allowed again"
        market = str(a["market"]) if a.get("market") else None
        if req.command == "approve":
            version = await e.approve(market)
            return f"approved: {version} is the champion{' of ' + market if market else ''}; it trades from the next signal"
        if req.command == "rollback":
            st = e.status()
            champions = getattr(st, "champions", None) or {}
            previous = (champions.get(market) if market else None) or st.champion or "?"
            restored = await e.rollback(str(a.get("reason") or ""), market)
            return f"rolled back {previous} -> {restored}{' (' + market + ')' if market else ''}"
        if req.command == "reset-peak":
            to = a.get("to")
            peak = await e.reset_peak(None if to is None else float(to), str(a.get("reason") or "operator reset"))
            return f"equity peak reset to {peak:,.2f}"
        if req.command == "flatten":
            tasks = await e.flatten()
            return f"flatten started: working orders cancelled, {len(tasks)} closing order(s) through the gate"
        raise ValueError(f"unknown command {req.command!r}")
