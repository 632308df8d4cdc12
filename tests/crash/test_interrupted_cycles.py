"""Defect 4 of issue 13: cycles a crash left RUNNING are resolved at the next start-up, journalled,
and never warned about again. The store is left as a SIGKILL mid-cycle leaves it (the row RUNNING,
owned by the dead process, no summary) in a real SQLite file; real ``hydra-tui`` subprocesses
restart on it. (The kill loop produces the same state with real kills.)"""

from __future__ import annotations

import sqlite3

import pytest
from crash_procs import query, run_engine, store_dir

pytestmark = pytest.mark.timeout(180)


def test_a_crashed_cycle_is_run_again_while_its_target_stands_else_closed_interrupted(tmp_path) -> None:
    data = tmp_path / "data"
    first = run_engine(data, 3)
    assert first.returncode == 0, first.stderr[-3000:]
    db = store_dir(data) / "hydra.db"
    rows = query(db, "SELECT market, trading_date FROM cycles ORDER BY trading_date, id")
    old, last = rows[0], rows[-1]
    con = sqlite3.connect(db)
    with con:  # what a SIGKILL inside these two cycles leaves behind
        con.execute("UPDATE cycles SET status = 'RUNNING', owner = '999999:deadbeef0000', finished_at = NULL, "
                    "summary = NULL WHERE (market, trading_date) IN ((?, ?), (?, ?))", (*old, *last))
    con.close()

    again = run_engine(data, 1)
    assert again.returncode == 0, again.stderr[-3000:]
    status = dict(((m, d), (s, a)) for m, d, s, a in query(db, "SELECT market, trading_date, status, attempts FROM cycles"))
    assert status[old][0] == "INTERRUPTED"  # its order session is long over
    assert status[last] == ("FINISHED", 2)  # its target still stood: the cycle ran again
    assert query(db, "SELECT count(*) FROM cycles WHERE status = 'RUNNING'") == [(0,)]
    notes = [m for (m,) in query(db, "SELECT message FROM ops_journal WHERE actor = 'runner'")]
    assert any("closed as INTERRUPTED" in n and old[0] in n for n in notes), notes
    assert any("run again toward its target" in n and last[0] in n for n in notes), notes
    assert "cycle_interrupted" in again.stderr

    third = run_engine(data, 1)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "cycle_interrupted" not in third.stderr  # resolved once, not warned about on every start
