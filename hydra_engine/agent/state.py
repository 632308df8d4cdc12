"""Persisted agent state: detectors, playbook history, rollback watch, autonomy, pause, approval.

Everything the agent must remember across restarts lives in one JSON document (``agent_state``
row ``agent``), written at the end of every phase that changes it, so a restart resumes detector
statistics exactly and never forgets a pending approval or an operator's pause.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiosqlite

from hydra_engine.agent.journal import dumps
from hydra_engine.model.registry import WriteGateLike

STATE_KEY = "agent"
"""Row of the single agent of a store from before per-market champions (v006 adopts it)."""
STATE_VERSION = 1


def state_key(market: str | None) -> str:
    """The ``agent_state`` row of one market's (or group's) agent; the old single row for None."""
    return f"{STATE_KEY}:{market}" if market else STATE_KEY


class AutonomyLevel(StrEnum):
    """How much the agent may do alone. Persisted; the engine and TUI show it."""

    LOCKDOWN = "lockdown"
    """Observe and diagnose only: no experiments, promotions or automatic rollbacks."""
    SUPERVISED = "supervised"
    """Experiments run; a passing candidate waits in AWAITING_APPROVAL for the operator."""
    AUTONOMOUS = "autonomous"
    """Passing candidates are promoted and regressions rolled back without asking."""

    @classmethod
    def parse(cls, value: str | AutonomyLevel) -> AutonomyLevel:
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValueError(f"autonomy level {value!r} is not one of {[m.value for m in cls]}") from None


@dataclass(slots=True)
class AgentState:
    """The mutable, persisted part of the agent. All fields JSON-able."""

    autonomy: AutonomyLevel = AutonomyLevel.SUPERVISED
    paused: bool = False
    champion_version: str | None = None
    """Version the detectors' reference belongs to; a change resets them."""
    drift: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    playbook: dict[str, Any] = field(default_factory=dict)
    rollback: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    """Candidate awaiting approval: version, experiment id, gate evidence."""
    last_observed: str | None = None
    """Last trading date fed to the feature detectors (ISO)."""
    last_outcome: str | None = None
    """Last decision date whose realized outcome fed the performance detectors (ISO)."""
    recent_findings: list[dict[str, Any]] = field(default_factory=list)
    trials_since_promotion: int = 0
    trial_sharpes: list[float] = field(default_factory=list)
    last_promotion: str | None = None
    last_cycle: str | None = None
    episode_start: str | None = None
    """First alarm (ISO date) of the open drift episode; the plain-break test looks at the days after it."""
    last_alarm: str | None = None
    episode_windows_tried: int = 0
    episode_looks: int = 0
    """Batches of experiments run in the open episode on its evidence since the first alarm (each
    spends part of the gate's DM level: ``promotion.episode_alpha``)."""
    """Evidence windows since the episode's first alarm at its last batch of experiments: the next
    batch waits for a new window, so one body of evidence is not tested again and again."""
    derisk: dict[str, Any] | None = None
    """The defensive cut in force (``size_fraction``, ``since``, ``reason``, evidence) while the
    champion's relation has plainly broken and no candidate has passed; None when trading in full."""

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        d["autonomy"] = self.autonomy.value
        d["version"] = STATE_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentState:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"agent_state: version {d.get('version')!r}, expected {STATE_VERSION}")
        known = {k: v for k, v in d.items() if k in cls.__slots__}  # type: ignore[attr-defined]
        known["autonomy"] = AutonomyLevel.parse(known.get("autonomy", "supervised"))
        return cls(**known)


class AgentStateStore:
    """Load and save ``AgentState`` in the ``agent_state`` table."""

    def __init__(self, conn: aiosqlite.Connection, write_gate: WriteGateLike | None = None, key: str = STATE_KEY) -> None:
        """``write_gate``: the store's ``Store.tx`` when ``conn`` is shared with other writers;
        ``key``: the row (``state_key(market)`` for one market's agent)."""
        self._conn = conn
        self._gate = write_gate
        self.key = key

    async def load(self) -> AgentState | None:
        async with self._conn.execute("SELECT value FROM agent_state WHERE key = ?", (self.key,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except json.JSONDecodeError as exc:
            raise ValueError(f"agent_state row {self.key!r}: invalid JSON at line {exc.lineno}") from exc
        return AgentState.from_dict(data)

    async def save(self, state: AgentState) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        # Detector state holds thousands of numbers: serialize off the event loop.
        text = await asyncio.to_thread(dumps, state.to_dict())
        sql = (
            "INSERT INTO agent_state (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        )
        if self._gate is not None:
            async with self._gate.transaction() as conn:
                await conn.execute(sql, (self.key, text, now))
            return
        await self._conn.execute(sql, (self.key, text, now))
        await self._conn.commit()
