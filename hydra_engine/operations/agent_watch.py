"""The agent's decisions as engine events, read from where the agent records them: its journal.

Promotions, approvals awaited, rollbacks and de-risks can happen inside a cycle or later, when a
background experiment finishes; every one of them is a row in ``agent_journal``. This watch tails
that table (new rows since the last one seen, which is kept in the store so a restart neither
repeats nor loses one) and publishes an ``AgentDecision`` for each row that matters. It polls
every few seconds and at once when poked (the alert router pokes it on cycle and phase events).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Protocol

import aiosqlite
import structlog

from hydra_engine.events import AgentDecision, EngineEvent
from hydra_engine.tasks import log_task_failure

log = structlog.get_logger(__name__)

DECISIONS: Mapping[tuple[str, str], str] = {
    ("decision", "promoted"): "promoted",
    ("decision", "awaiting_approval"): "awaiting_approval",
    ("rollback", "automatic"): "rolled_back",
    ("rollback", "recommended"): "rollback_recommended",
    ("decision", "derisk"): "derisked",
    ("decision", "derisk_recommended"): "derisk_recommended",
}
"""(entry_type, outcome) of a journal row -> the ``AgentDecision.decision`` it is published as."""

SEEN_KEY = "operations.agent_journal_seen"
"""kv row holding the id of the last journal row this watch handled."""


class RawState(Protocol):
    """The store's key-value table as the watch uses it (``Store.kv`` fits)."""

    async def get_raw(self, name: str) -> Any: ...

    async def set_raw(self, name: str, value: Any) -> None: ...


class NowSource(Protocol):
    def now(self) -> dt.datetime: ...


class EventSink(Protocol):
    def publish(self, event: EngineEvent) -> None: ...


class AgentJournalWatch:
    """Tails ``agent_journal`` and publishes ``AgentDecision`` events, each row once."""

    def __init__(self, conn: aiosqlite.Connection, kv: RawState, bus: EventSink, clock: NowSource,
                 *, poll_s: float = 2.0, batch: int = 200) -> None:
        self._conn = conn
        self._kv = kv
        self._bus = bus
        self._clock = clock
        self.poll_s = poll_s
        self._batch = batch
        self.seen = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """The last row handled; on a store that never ran the watch, the newest row (no replay of history)."""
        stored = await self._kv.get_raw(SEEN_KEY)
        if isinstance(stored, int) and not isinstance(stored, bool):
            self.seen = stored
            return
        async with self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM agent_journal") as cur:
            row = await cur.fetchone()
        self.seen = int(row[0]) if row else 0
        await self._kv.set_raw(SEEN_KEY, self.seen)

    def poke(self) -> None:
        """Look now rather than at the next poll."""
        self._wake.set()

    async def poll_once(self) -> list[AgentDecision]:
        """Publish the decisions journalled since the last look; returns them."""
        sql = ("SELECT id, entry_type, outcome, summary, payload, market FROM agent_journal "
               "WHERE id > ? AND entry_type IN ('decision', 'rollback') ORDER BY id LIMIT ?")
        async with self._conn.execute(sql, (self.seen, self._batch)) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return []
        out: list[AgentDecision] = []
        for row_id, entry_type, outcome, summary, payload, market in rows:
            decision = DECISIONS.get((entry_type, outcome))
            if decision is None:
                continue
            try:
                data = json.loads(payload or "{}")
            except ValueError:
                data = {}
            version = str(data.get("version") or data.get("restored") or data.get("champion") or "")
            event = AgentDecision(at=self._clock.now(), market=market or "", decision=decision, version=version,
                                  summary=summary, journal_id=int(row_id))
            self._bus.publish(event)
            out.append(event)
        self.seen = int(rows[-1][0])
        await self._kv.set_raw(SEEN_KEY, self.seen)
        return out

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="agent-journal-watch")
        self._task.add_done_callback(log_task_failure)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.poll_once()
            except Exception:  # noqa: BLE001 - a failed look is retried at the next one
                log.exception("agent_watch.poll_failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
