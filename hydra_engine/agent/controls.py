"""Operator controls (autonomy, pause, approve, reject, manual rollback) and the automatic rollback.

Each change is made under the state lock, persisted, then journalled, so a restart never loses an
operator's decision.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hydra_engine.agent.core import AgentMemory, AgentPhase, PhaseSink, trading_day
from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.agent.rollback import RollbackVerdict
from hydra_engine.agent.state import AutonomyLevel
from hydra_engine.model.registry import ModelRegistry, RegistryError

__all__ = ["AgentControls", "journal_lift"]


class AgentControls:
    """What the operator (and the rollback watch) may change: autonomy, pause, approvals, the champion."""

    def __init__(self, registry: ModelRegistry, journal: ExperimentJournal, memory: AgentMemory, phases: PhaseSink) -> None:
        self._registry = registry
        self._journal = journal
        self._memory = memory
        self._phases = phases

    async def set_autonomy(self, level: AutonomyLevel | str) -> None:
        level = AutonomyLevel.parse(level)
        async with self._memory.lock:
            old, self._memory.state.autonomy = self._memory.state.autonomy, level
            await self._memory.save()
        await self._journal.record("control", f"autonomy {old.value} -> {level.value}", outcome="autonomy", payload={"from": old.value, "to": level.value})

    async def pause(self) -> None:
        """Stop experiments (observation continues). Persisted."""
        async with self._memory.lock:
            self._memory.state.paused = True
            await self._memory.save()
        await self._journal.record("control", "agent paused: experiments stop, observation continues", outcome="paused")
        if self._phases.phase in (AgentPhase.IDLE,):
            self._phases.set_phase(AgentPhase.PAUSED)

    async def resume(self) -> None:
        async with self._memory.lock:
            self._memory.state.paused = False
            await self._memory.save()
        await self._journal.record("control", "agent resumed", outcome="resumed")
        if self._phases.phase is AgentPhase.PAUSED:
            self._phases.set_phase(self._memory.rest_phase())

    async def approve(self) -> str:
        """Promote the candidate awaiting approval; returns its version."""
        async with self._memory.lock:
            pending = self._memory.state.pending
            if not pending:
                raise RegistryError("approve: no candidate is awaiting approval")
            version = pending["version"]
            previous = await self._registry.champion_version()
            await self._registry.promote(version, reason=f"approved by operator ({pending['hypothesis_key']})")
            lifted = self._memory.record_promotion(version, previous, pending)
            self._memory.state.pending = None
            await self._memory.save()
        await self._journal.set_experiment_outcome(pending["experiment_id"], "promoted", version)
        await self._journal.record("decision", f"operator approved {version}; it trades from the next signal", outcome="approved",
                                  trading_date=pending.get("trading_date"), payload={"version": version, "previous": previous, **pending})
        await journal_lift(self._journal, lifted, version, pending.get("trading_date"))
        self._phases.set_phase(self._memory.rest_phase())
        return version

    async def reject(self, reason: str = "rejected by operator") -> str:
        """Reject the candidate awaiting approval; returns its version."""
        async with self._memory.lock:
            pending = self._memory.state.pending
            if not pending:
                raise RegistryError("reject: no candidate is awaiting approval")
            version = pending["version"]
            await self._registry.reject(version, reason)
            self._memory.playbook.record(pending["hypothesis_key"], "rejected", trading_day(pending.get("trading_date")))
            self._memory.state.pending = None
            await self._memory.save()
        await self._journal.set_experiment_outcome(pending["experiment_id"], "rejected_by_operator", version)
        await self._journal.record("decision", f"operator rejected {version}: {reason}", outcome="rejected",
                                  trading_date=pending.get("trading_date"), payload={"version": version, "reason": reason, **pending})
        self._phases.set_phase(self._memory.rest_phase())
        return version

    async def rollback(self, reason: str, trading_date: dt.date | None = None) -> str:
        """Manual rollback to the previous champion; returns the restored version."""
        today = trading_date or dt.date.today()
        async with self._memory.lock:
            current = await self._registry.champion_version()
            restored = await self._registry.rollback(reason)
            self._memory.rollback_monitor.note_rollback(today)
            lifted = self._memory.end_episode()
            await self._memory.save()
        await self._journal.record("rollback", f"manual rollback {current} -> {restored}: {reason}", outcome="manual",
                                  trading_date=today, payload={"rolled_back": current, "restored": restored, "reason": reason})
        await journal_lift(self._journal, lifted, restored, today)
        return restored

    async def rollback_automatically(self, day: dt.date, cid: str, verdict: RollbackVerdict) -> str:
        """The shadow found the new champion trailing its predecessor: restore it, start the cooldown."""
        reason = f"{verdict.new_version} trailed {verdict.predecessor} by {verdict.trailing_excess_loss:.4f} nats/day for {verdict.bad_streak} days"
        async with self._memory.lock:
            restored = await self._registry.rollback(reason)
            self._memory.rollback_monitor.note_rollback(day)
            lifted = self._memory.end_episode()
            await self._memory.save()
        await self._journal.record("rollback", f"automatic rollback to {restored}: {reason}", trading_date=day, cycle_id=cid,
                                  outcome="automatic", payload=verdict.to_dict() | {"restored": restored})
        await journal_lift(self._journal, lifted, restored, day)
        return restored


async def journal_lift(journal: ExperimentJournal, lifted: dict[str, Any] | None, version: str,
                       trading_date: dt.date | str | None) -> None:
    """Journal the end of a de-risk (the champion it was about was replaced)."""
    if lifted:
        await journal.record("decision", f"de-risk lifted: {version} is the champion now (cut since {lifted.get('since')})",
                             outcome="derisk_lifted", trading_date=trading_date, payload={"version": version, "lifted": lifted})
