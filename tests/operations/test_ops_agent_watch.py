"""AgentJournalWatch on a real store: the agent's journal rows that matter become AgentDecision
events once each, history before the first start is not replayed, and a restart resumes where the
last run stopped (the position is kept in the store)."""

from __future__ import annotations

import datetime as dt

from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.clock import ManualClock
from hydra_engine.events import AgentDecision, EventBus
from hydra_engine.operations.agent_watch import AgentJournalWatch

T0 = dt.datetime(2026, 3, 2, 20, 0, tzinfo=dt.timezone.utc)


async def test_decisions_are_published_once_and_survive_a_restart(store) -> None:
    cl = ExperimentJournal(store.conn, store.tx, market="CL")
    zo = ExperimentJournal(store.conn, store.tx, market="ZO")
    await cl.record("decision", "v0002 passed the gate and awaits operator approval", outcome="awaiting_approval",
                    payload={"version": "v0002-old"})  # before the watch ever ran: history
    bus = EventBus()
    sub = bus.subscribe(types=(AgentDecision,))
    watch = AgentJournalWatch(store.conn, store.kv, bus, ManualClock(T0))
    await watch.load()
    assert await watch.poll_once() == []
    await cl.record("observation", "quiet", outcome="quiet")
    await cl.record("decision", "v0005 passed the gate and awaits operator approval", outcome="awaiting_approval",
                    payload={"version": "v0005-abc"})
    await zo.record("decision", "de-risk: flat until a candidate passes", outcome="derisk",
                    payload={"champion": "v0004-def", "size_fraction": 0.0})
    await zo.record("rollback", "automatic rollback to v0003-aaa", outcome="automatic", payload={"restored": "v0003-aaa"})
    await cl.record("decision", "operator approved v0005", outcome="approved", payload={"version": "v0005-abc"})
    published = await watch.poll_once()
    assert [(e.market, e.decision, e.version) for e in published] == [
        ("CL", "awaiting_approval", "v0005-abc"), ("ZO", "derisked", "v0004-def"), ("ZO", "rolled_back", "v0003-aaa")]
    assert [e.decision for e in iter(sub.get_nowait, None)] == ["awaiting_approval", "derisked", "rolled_back"]
    assert await watch.poll_once() == []

    again = AgentJournalWatch(store.conn, store.kv, bus, ManualClock(T0))  # the next engine start
    await again.load()
    assert await again.poll_once() == []
    await cl.record("rollback", "rollback of v0005 recommended (lockdown: not done)", outcome="recommended",
                    payload={"new_version": "v0005-abc"})
    (event,) = await again.poll_once()
    assert event.decision == "rollback_recommended" and event.market == "CL" and event.journal_id > 0
