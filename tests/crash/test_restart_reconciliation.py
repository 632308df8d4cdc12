"""Defect 3 of issue 13: a clean restart journals no unexplained position change, while a real
mismatch (a position the journal does not explain) still stands out. Real ``hydra-tui --no-ui``
subprocesses on one data dir, the real SQLite store read back."""

from __future__ import annotations

import json

import pytest
from crash_procs import query, run_engine, store_dir

pytestmark = pytest.mark.timeout(180)
SIDED = ("--set", "execution.long_threshold=0.5", "--set", "execution.short_threshold=0.5", "--set", "agent.enabled=false")
"""The champion always takes a side, so positions are held (the mechanics are under test, not its edge)."""


def _position_changes(db) -> list[tuple]:
    return query(db, "SELECT message, detail FROM ops_journal WHERE kind = 'POSITION_CHANGE'")


def test_clean_restarts_journal_no_unexplained_position_and_a_real_mismatch_stands_out(tmp_path) -> None:
    data = tmp_path / "data"
    first = run_engine(data, 4, *SIDED)
    assert first.returncode == 0, first.stderr[-3000:]
    store = store_dir(data)
    db = store / "hydra.db"
    assert query(db, "SELECT count(*) FROM fills")[0][0] >= 1, "the run must hold a position to test"
    for days in (1, 2):  # two clean restarts, trading on in between
        again = run_engine(data, days, *SIDED)
        assert again.returncode == 0, again.stderr[-3000:]
        assert _position_changes(db) == [], "a clean restart reported an unexplained position"

    # a real mismatch: the account gains 3 contracts no fill of ours explains
    path = store / "exchange.json"
    state = json.loads(path.read_text())
    [acct] = state["accounts"]
    held = [p for p in acct["positions"] if p["qty"]]
    assert held, "expected a held position after the runs"
    held[0]["qty"] += 3.0
    path.write_text(json.dumps(state))
    bad = run_engine(data, 1, *SIDED)
    assert bad.returncode == 0, bad.stderr[-3000:]
    changes = _position_changes(db)
    assert len(changes) == 1, changes
    detail = json.loads(changes[0][1])
    assert detail["con_id"] == held[0]["con_id"] and detail["actual"] - detail["expected"] == 3.0
