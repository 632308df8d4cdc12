"""pause, resume, reset-peak, approve, rollback and flatten with no engine running: applied to the
store (journalled with the ``cli:`` actor) where that is safe, refused otherwise; on copies of a
store made once by a real ``hydra-tui replay --days 5 --data-dir D``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from commands_helpers import STORE, copy_store, hydra, hydra_json


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("control")
    out = hydra("replay", "--days", "5", "--data-dir", str(data), timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return data


@pytest.fixture
def store(replayed: Path, tmp_path: Path) -> Path:
    """A private copy of the replayed data dir."""
    return copy_store(replayed, tmp_path / "d")


def q(data: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{data / STORE / 'hydra.db'}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def kv(data: Path, key: str) -> Any:
    found = q(data, "SELECT value FROM kv WHERE key = ?", key)
    return json.loads(found[0][0]) if found else None


def test_pause_and_resume_without_an_engine_set_the_persisted_flags(store: Path) -> None:
    out = hydra("pause", "--data-dir", str(store), "--reason", "maintenance window")
    assert out.returncode == 0, out.stderr
    assert "applied to the store" in out.stdout and "journalled as cli:" in out.stdout
    assert kv(store, "paused") is True and kv(store, "pause_reason") == "maintenance window"
    states = {k: json.loads(v) for k, v in q(store, "SELECT key, value FROM agent_state")}
    assert states and all(s["paused"] for s in states.values())
    ops = q(store, "SELECT command, actor, message FROM ops_journal WHERE command = 'pause'")
    assert ops and ops[-1][1].startswith("cli:") and "maintenance window" in ops[-1][2]
    control = q(store, "SELECT market FROM agent_journal WHERE entry_type = 'control' AND outcome = 'paused'")
    assert {m for (m,) in control} == {k.partition(":")[2] for k in states}

    out = hydra("resume", "--data-dir", str(store))
    assert out.returncode == 0, out.stderr
    assert kv(store, "paused") is False
    assert not any(json.loads(v)["paused"] for (v,) in q(store, "SELECT value FROM agent_state"))
    alias = hydra("run", "--data-dir", str(store))  # the plan's name for resume
    assert alias.returncode == 0 and "resumed" in alias.stdout


def test_reset_peak_without_an_engine(store: Path) -> None:
    out = hydra("reset-peak", "--data-dir", str(store), "--to", "900000", "--reason", "deposit withdrawn")
    assert out.returncode == 0, out.stderr
    assert q(store, "SELECT peak FROM equity_peak")[0][0] == 900_000.0
    last_mark = q(store, "SELECT net_liquidation FROM equity_marks ORDER BY trading_date DESC LIMIT 1")[0][0]
    out = hydra("reset-peak", "--data-dir", str(store))  # no --to: the last closing mark
    assert out.returncode == 0 and "the last closing mark" in out.stdout
    assert q(store, "SELECT peak FROM equity_peak")[0][0] == pytest.approx(last_mark)
    actors = {a for (a,) in q(store, "SELECT actor FROM ops_journal WHERE command = 'reset-peak'")}
    assert actors and all(a.startswith("cli:") for a in actors)
    bad = hydra("reset-peak", "--data-dir", str(store), "--to", "-1")
    assert bad.returncode == 2 and "--to -1: must be a positive amount" in bad.stderr


def test_flatten_needs_a_running_engine_and_a_confirmation(store: Path) -> None:
    out = hydra("flatten", "--data-dir", str(store))  # stdin is not a terminal: --yes is required
    assert out.returncode == 2 and "add --yes" in out.stderr
    out = hydra("flatten", "--data-dir", str(store), "--yes")
    assert out.returncode == 2 and "needs a running engine" in out.stderr
    assert not q(store, "SELECT 1 FROM ops_journal WHERE command = 'flatten'")


async def _plant_candidate(data: Path, market: str) -> tuple[str, str]:
    """Register a copy of ``market``'s champion as a candidate and leave it awaiting approval in that
    market's agent state, as a supervised agent does when a candidate passes the gate."""
    from hydra_engine.agent.state import AgentStateStore, state_key
    from hydra_engine.model.registry import ModelRegistry
    from hydra_engine.store.database import Store

    store = await Store.open(data, "sim", "DU1234567")
    try:
        registry = ModelRegistry(store.conn, store.directory / "models", store.clock, write_gate=store.tx).for_market(market)
        champion = await registry.champion_version()
        assert champion is not None
        model = await registry.load(champion)
        candidate = await registry.register(model, {"test": True}, parent=champion, mutation="retrain_recent")
        states = AgentStateStore(store.conn, store.tx, key=state_key(market))
        state = await states.load()
        assert state is not None
        state.pending = {"version": candidate, "experiment_id": "exp-test", "hypothesis_key": "retrain_recent",
                         "trading_date": "2018-01-08", "previous": champion}
        await states.save(state)
    finally:
        await store.close()
    return champion, candidate


async def test_approve_then_rollback_without_an_engine(store: Path) -> None:
    import asyncio

    champion, candidate = await _plant_candidate(store, "ZO")
    before_cl = q(store, "SELECT version FROM models WHERE status = 'champion' AND market = 'CL'")

    wrong = await asyncio.to_thread(hydra, "approve", "--data-dir", str(store), "--market", "CL")
    assert wrong.returncode == 2 and "no candidate is awaiting approval for CL" in wrong.stderr

    out = await asyncio.to_thread(hydra, "approve", "--data-dir", str(store))  # the only one waiting: ZO's
    assert out.returncode == 0, out.stderr
    assert candidate in out.stdout and "ZO" in out.stdout
    assert q(store, "SELECT version FROM models WHERE status = 'champion' AND market = 'ZO'") == [(candidate,)]
    assert q(store, "SELECT version FROM models WHERE status = 'champion' AND market = 'CL'") == before_cl
    state = json.loads(q(store, "SELECT value FROM agent_state WHERE key = 'agent:ZO'")[0][0])
    assert state["pending"] is None
    assert q(store, "SELECT market FROM agent_journal WHERE entry_type = 'decision' AND outcome = 'approved'") == [("ZO",)]

    again = await asyncio.to_thread(hydra, "approve", "--data-dir", str(store))
    assert again.returncode == 2 and "no candidate is awaiting approval" in again.stderr
    ambiguous = await asyncio.to_thread(hydra, "rollback", "--data-dir", str(store))
    assert ambiguous.returncode == 2 and "name one with --market" in ambiguous.stderr

    out = await asyncio.to_thread(hydra, "rollback", "--data-dir", str(store), "--market", "ZO", "--reason", "test")
    assert out.returncode == 0, out.stderr
    assert f"{candidate} -> {champion}" in out.stdout
    assert q(store, "SELECT version FROM models WHERE status = 'champion' AND market = 'ZO'") == [(champion,)]
    manual = q(store, "SELECT market, summary FROM agent_journal WHERE entry_type = 'rollback' AND outcome = 'manual'")
    assert len(manual) == 1 and manual[0][0] == "ZO" and "test" in manual[0][1]
    actors = q(store, "SELECT command, actor FROM ops_journal WHERE command IN ('approve', 'rollback') ORDER BY id")
    assert [c for c, _ in actors] == ["approve", "rollback"] and all(a.startswith("cli:") for _, a in actors)
    code, journal = hydra_json("journal", "--data-dir", str(store), "--type", "rollback")
    assert code == 0 and journal["entries"][0]["market"] == "ZO"


def test_control_commands_refuse_bad_input(store: Path, tmp_path: Path) -> None:
    for args, needle in ((("approve", "--market", "XX"), "unknown market"),
                         (("pause", "--reason", " "), "--reason: must not be empty"),
                         (("pause", "--timeout", "0"), "--timeout 0"),
                         (("pause", "--bogus"), "unrecognized arguments: --bogus")):
        out = hydra(*args, "--data-dir", str(store))
        assert out.returncode == 2 and needle in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    none = hydra("pause", "--data-dir", str(tmp_path / "empty"))
    assert none.returncode == 2 and "no store at" in none.stderr
