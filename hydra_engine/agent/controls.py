"""Operator controls (autonomy, pause, approve, reject, manual rollback) and the automatic rollback.

Each change is made under the state lock, persisted, then journalled, so a restart never loses an
operator's decision.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hydra_engine.agent.core import AgentCore, AgentPhase
from hydra_engine.agent.state import AutonomyLevel
from hydra_engine.model.registry import RegistryError

__all__ = ["ControlsMixin"]


class ControlsMixin(AgentCore):
    """Operator controls and rollbacks for ``AgentLoop``."""

    async def set_autonomy(self, level: AutonomyLevel | str) -> None:
        level = AutonomyLevel.parse(level)
        async with self._state_lock:
            old, self.state.autonomy = self.state.autonomy, level
            await self._save()
        await self.journal.record("control", f"autonomy {old.value} -> {level.value}", outcome="autonomy", payload={"from": old.value, "to": level.value})

    async def pause(self) -> None:
        """Stop experiments (observation continues). Persisted."""
        async with self._state_lock:
            self.state.paused = True
            await self._save()
        await self.journal.record("control", "agent paused: experiments stop, observation continues", outcome="paused")
        if self._phase in (AgentPhase.IDLE,):
            self._set_phase(AgentPhase.PAUSED)

    async def resume(self) -> None:
        async with self._state_lock:
            self.state.paused = False
            await self._save()
        await self.journal.record("control", "agent resumed", outcome="resumed")
        if self._phase is AgentPhase.PAUSED:
            self._set_phase(self._rest_phase())

    async def approve(self) -> str:
        """Promote the candidate awaiting approval; returns its version."""
        async with self._state_lock:
            pending = self.state.pending
            if not pending:
                raise RegistryError("approve: no candidate is awaiting approval")
            version = pending["version"]
            previous = await self.registry.champion_version()
            await self.registry.promote(version, reason=f"approved by operator ({pending['hypothesis_key']})")
            self._after_promotion(version, previous, pending)
            self.state.pending = None
            await self._save()
        await self.journal.set_experiment_outcome(pending["experiment_id"], "promoted", version)
        await self.journal.record("decision", f"operator approved {version}; it trades from the next signal", outcome="approved",
                                  trading_date=pending.get("trading_date"), payload={"version": version, "previous": previous, **pending})
        self._set_phase(self._rest_phase())
        return version

    async def reject(self, reason: str = "rejected by operator") -> str:
        """Reject the candidate awaiting approval; returns its version."""
        async with self._state_lock:
            pending = self.state.pending
            if not pending:
                raise RegistryError("reject: no candidate is awaiting approval")
            version = pending["version"]
            await self.registry.reject(version, reason)
            self.playbook.record(pending["hypothesis_key"], "rejected", self._today(pending.get("trading_date")))
            self.state.pending = None
            await self._save()
        await self.journal.set_experiment_outcome(pending["experiment_id"], "rejected_by_operator", version)
        await self.journal.record("decision", f"operator rejected {version}: {reason}", outcome="rejected",
                                  trading_date=pending.get("trading_date"), payload={"version": version, "reason": reason, **pending})
        self._set_phase(self._rest_phase())
        return version

    async def rollback(self, reason: str, trading_date: dt.date | None = None) -> str:
        """Manual rollback to the previous champion; returns the restored version."""
        today = trading_date or dt.date.today()
        async with self._state_lock:
            current = await self.registry.champion_version()
            restored = await self.registry.rollback(reason)
            self.rollback_monitor.note_rollback(today)
            await self._save()
        await self.journal.record("rollback", f"manual rollback {current} -> {restored}: {reason}", outcome="manual",
                                  trading_date=today, payload={"rolled_back": current, "restored": restored, "reason": reason})
        return restored

    async def _auto_rollback(self, day: dt.date, cid: str, verdict: Any) -> str:
        reason = f"{verdict.new_version} trailed {verdict.predecessor} by {verdict.trailing_excess_loss:.4f} nats/day for {verdict.bad_streak} days"
        async with self._state_lock:
            restored = await self.registry.rollback(reason)
            self.rollback_monitor.note_rollback(day)
            await self._save()
        await self.journal.record("rollback", f"automatic rollback to {restored}: {reason}", trading_date=day, cycle_id=cid,
                                  outcome="automatic", payload=verdict.to_dict() | {"restored": restored})
        return restored
