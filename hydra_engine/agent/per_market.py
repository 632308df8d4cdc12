"""One self-healing agent per market (or per group of markets the user names).

A model trained on one market never trades another by default: each market has its own champion,
detector state, journal entries, cooldowns, budgets and approvals. ``MarketAgents`` holds one
``AgentLoop`` per model key (a market's symbol, or the name of the group it belongs to) and routes
each market's daily step to its agent. A group's agent observes and trains on the bars of its lead
market (the first of the group in the configured order); every market of the group trades that
champion.

``adopt_unassigned`` moves what a store written before per-market champions holds (its single
champion, the agent's journal, experiments and persisted state, all under market '') to the first
market, in one transaction, at the engine's first start on the new schema (migration v006).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import pandas as pd
import structlog

from hydra_engine.agent.core import AgentConfig, AgentPhase
from hydra_engine.agent.experiments import ExperimentExecutor
from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.agent.loop import AgentCycleResult, AgentLoop
from hydra_engine.agent.state import STATE_KEY, AutonomyLevel, state_key
from hydra_engine.model.registry import ModelRegistry, RegistryError, WriteGateLike

log = structlog.get_logger(__name__)

__all__ = ["MarketAgents", "ModelKeys", "adopt_unassigned"]

_PHASE_ORDER = (AgentPhase.AWAITING_APPROVAL, AgentPhase.EVALUATING, AgentPhase.EXPERIMENTING, AgentPhase.HYPOTHESIZING,
                AgentPhase.DIAGNOSING, AgentPhase.OBSERVING, AgentPhase.PAUSED, AgentPhase.IDLE)
"""Most to least notable: the phase shown for all the agents together."""


@dataclass(frozen=True, slots=True)
class ModelKeys:
    """Which model key (champion) each market trades, and which market feeds each key's agent."""

    key_of: Mapping[str, str]
    """Market symbol -> model key (the symbol itself, or its group's name)."""
    lead_of: Mapping[str, str]
    """Model key -> the market whose bars its agent observes and trains on."""

    @classmethod
    def from_groups(cls, markets: Sequence[str], groups: Mapping[str, str] | None = None) -> ModelKeys:
        """``groups``: market symbol -> group name for the markets that share a champion."""
        groups = {k: v for k, v in (groups or {}).items() if v}
        clash = sorted(set(groups.values()) & (set(markets) - set(groups)))
        if clash:
            raise ValueError(f"model group name {clash[0]!r} is also a market traded alone: pick another name")
        key_of = {m: groups.get(m, m) for m in markets}
        lead_of: dict[str, str] = {}
        for m in markets:  # configured order: the first market of a group leads it
            lead_of.setdefault(key_of[m], m)
        return cls(key_of, lead_of)

    @property
    def keys(self) -> list[str]:
        return list(self.lead_of)

    def key(self, market: str) -> str:
        try:
            return self.key_of[market]
        except KeyError:
            raise KeyError(f"market {market!r} is not traded here (markets: {', '.join(self.key_of)})") from None


async def adopt_unassigned(conn: aiosqlite.Connection, gate: WriteGateLike | None, key: str) -> dict[str, int]:
    """Give the rows of the old single-champion schema (market '') and the old agent state row to
    ``key``, in one transaction. Returns how many rows moved per table (all zero on a new store)."""
    moved: dict[str, int] = {}

    async def run(c: aiosqlite.Connection) -> None:
        async with c.execute("SELECT 1 FROM models WHERE market = ? AND status = 'champion'", (key,)) as cur:
            has_champion = await cur.fetchone() is not None
        for table in ("models", "agent_journal", "agent_experiments"):
            extra = " AND status != 'champion'" if table == "models" and has_champion else ""
            cur = await c.execute(f"UPDATE {table} SET market = ? WHERE market = ''{extra}", (key,))
            moved[table] = cur.rowcount
            await cur.close()
        if has_champion:  # a champion of its own already: the old one is archived beside it
            cur = await c.execute("UPDATE models SET market = ?, status = 'archived', status_reason = "
                                  "'adopted beside a champion of its own market' WHERE market = '' AND status = 'champion'", (key,))
            moved["models"] += cur.rowcount
            await cur.close()
        cur = await c.execute("UPDATE agent_state SET key = ? WHERE key = ? AND NOT EXISTS "
                              "(SELECT 1 FROM agent_state WHERE key = ?)", (state_key(key), STATE_KEY, state_key(key)))
        moved["agent_state"] = cur.rowcount
        await cur.close()

    if gate is not None:
        async with gate.transaction() as c:
            await run(c)
    else:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await run(conn)
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
    if any(moved.values()):
        log.info("agent.adopted_single_champion", market=key, **moved)
    return moved


class MarketAgents:
    """The agents of every model key; the engine's ``agent``. Routes per market, aggregates for views."""

    def __init__(self, conn: aiosqlite.Connection, registry: ModelRegistry, executor: ExperimentExecutor,
                 work_dir: str | Path, config: AgentConfig, keys: ModelKeys, *,
                 on_phase: Callable[[str, AgentPhase], object] | None = None,
                 write_gate: WriteGateLike | None = None) -> None:
        self.config = config
        self.keys = keys
        self._conn = conn
        self._gate = write_gate
        self._on_phase = on_phase
        self.journal = ExperimentJournal(conn, write_gate)
        """Every market's journal (read it; each agent writes its own)."""
        self.agents: dict[str, AgentLoop] = {
            key: AgentLoop(conn, registry.for_market(key), executor, Path(work_dir) / key, config,
                           on_phase=self._phase_hook(key), write_gate=write_gate, market=key)
            for key in keys.keys
        }

    def _phase_hook(self, key: str) -> Callable[[AgentPhase], object]:
        def hook(phase: AgentPhase) -> None:
            if self._on_phase is not None:
                self._on_phase(key, phase)
        return hook

    # ----------------------------------------------------------------- look-ups
    @property
    def markets(self) -> Mapping[str, AgentLoop]:
        """Model key -> its agent (a key is a market symbol unless the user grouped markets)."""
        return self.agents

    def for_market(self, market: str) -> AgentLoop:
        """The agent whose champion ``market`` trades (its own, or its group's)."""
        return self.agents[self.keys.key(market)]

    def _pick(self, market: str | None, what: str, wanted: Callable[[AgentLoop], bool] | None = None) -> AgentLoop:
        if market is not None:
            key = market if market in self.agents else self.keys.key(market)
            return self.agents[key]
        candidates = [a for a in self.agents.values() if wanted is None or wanted(a)]
        if len(self.agents) == 1:
            return next(iter(self.agents.values()))
        if len(candidates) == 1:
            return candidates[0]
        names = ", ".join(a.market or "" for a in (candidates or self.agents.values()))
        raise ValueError(f"{what}: name the market ({names})")

    # ----------------------------------------------------------------- life cycle
    async def start(self) -> None:
        """Adopt a single-champion store's rows to the first key, then start every agent."""
        await adopt_unassigned(self._conn, self._gate, self.keys.keys[0])
        for agent in self.agents.values():
            await agent.start()

    async def stop(self) -> None:
        for agent in self.agents.values():
            await agent.stop()

    async def wait_background(self, timeout: float | None = None) -> None:
        """Wait for every agent's background experiments (tests, benchmarks)."""
        await asyncio.gather(*(a.wait_background(timeout) for a in self.agents.values()))

    # ----------------------------------------------------------------- the daily step
    async def run_cycle(self, market: str, trading_date: dt.date, bars: pd.DataFrame) -> AgentCycleResult | None:
        """The agent step of ``market``'s cycle: its key's agent runs on the lead market's bars only
        (a grouped market other than the lead trades the group's champion without a step)."""
        key = self.keys.key(market)
        if self.keys.lead_of[key] != market:
            return None
        return await self.agents[key].run_cycle(trading_date, bars)

    def size_fraction(self, market: str) -> float:
        """Share of the market's size the agent allows: below 1 while its champion is de-risked."""
        return self.for_market(market).size_fraction

    # ----------------------------------------------------------------- operator controls (all or one)
    async def pause(self) -> None:
        for agent in self.agents.values():
            await agent.pause()

    async def resume(self) -> None:
        for agent in self.agents.values():
            await agent.resume()

    async def set_autonomy(self, level: AutonomyLevel | str) -> None:
        for agent in self.agents.values():
            await agent.set_autonomy(level)

    def pending_for(self, market: str | None = None) -> tuple[str, dict[str, Any]] | None:
        """(key, pending approval) of ``market``'s agent, or of the only agent with one."""
        try:
            agent = self._pick(market, "approve", lambda a: a.pending_approval is not None)
        except ValueError:
            return None
        return (agent.market or "", agent.pending_approval) if agent.pending_approval else None

    async def approve(self, market: str | None = None) -> tuple[str, str]:
        """Promote the candidate awaiting approval in ``market`` (or the only one waiting); (key, version)."""
        agent = self._pick(market, "approve: several candidates await approval",
                           lambda a: a.pending_approval is not None)
        if agent.pending_approval is None:
            raise RegistryError(f"approve: no candidate is awaiting approval{' in ' + agent.market if agent.market else ''}")
        return agent.market or "", await agent.approve()

    async def reject(self, market: str | None = None, reason: str = "rejected by operator") -> tuple[str, str]:
        agent = self._pick(market, "reject: several candidates await approval", lambda a: a.pending_approval is not None)
        return agent.market or "", await agent.reject(reason)

    async def rollback(self, reason: str, market: str | None = None, trading_date: dt.date | None = None) -> tuple[str, str, str | None]:
        """Restore the previous champion of ``market`` (required with several); (key, restored, rolled back)."""
        agent = self._pick(market, "rollback")
        current = await agent.registry.champion_version()
        restored = await agent.rollback(reason, trading_date)
        return agent.market or "", restored, current

    # ----------------------------------------------------------------- views
    @property
    def phase(self) -> AgentPhase:
        phases = {a.phase for a in self.agents.values()}
        return next((p for p in _PHASE_ORDER if p in phases), AgentPhase.IDLE)

    @property
    def paused(self) -> bool:
        return all(a.paused for a in self.agents.values())

    @property
    def autonomy(self) -> AutonomyLevel:
        return next(iter(self.agents.values())).autonomy

    @property
    def pending_approval(self) -> dict[str, Any] | None:
        """The first pending approval (with its ``market``), for a quick look; ``pending_for`` to choose."""
        for key, agent in self.agents.items():
            if agent.pending_approval:
                return {"market": key, **agent.pending_approval}
        return None

    def status(self) -> dict[str, Any]:
        """The TUI's and ``diagnose``'s view: every key's agent status, and the phase shown for all."""
        return {"phase": self.phase.value, "autonomy": self.autonomy.value, "paused": self.paused,
                "markets": {key: agent.status() for key, agent in self.agents.items()},
                "groups": {m: k for m, k in self.keys.key_of.items() if k != m}}
