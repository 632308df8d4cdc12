"""Durability of the fill journal's paths through a real Store under a real SIGKILL: every fill
the journal reported stored, and every conflicting-fill alarm it reported, is in the file. In
group mode each batch holds two new fills and a conflicting report of the first, so every batch
takes the record-by-record redo inside its one transaction."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

CHILD = r"""
import asyncio, datetime as dt, logging, sys
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
from hydra_engine.execution.fill_journal import FillJournal, FillRecord
from hydra_engine.store.database import Store
T0 = dt.datetime(2026, 11, 23, 15, tzinfo=dt.timezone.utc)
def rec(i, qty=1.0):
    return FillRecord(exec_id=f"k.{i:08d}.01.01", fill_time=T0 + dt.timedelta(seconds=i), symbol="CL",
                      contract_month="202703", direction="BUY", qty=qty, fill_price=70.02, arrival_mid=70.0,
                      predicted_slippage=0.01)
async def main():
    store = await Store.open_path(sys.argv[1], "DU1", lock=False)
    j = FillJournal(store.conn, group_commit=sys.argv[2] == "group", tx=store.tx)
    i = 0
    while True:
        c0 = j.conflicts
        if sys.argv[2] == "group":  # one batch: two new fills and a conflicting report of the first
            news = await asyncio.gather(j.log_fill(rec(i)), j.log_fill(rec(i + 1)), j.log_fill(rec(i, qty=2.0)))
            done = [(i, news[0]), (i + 1, news[1])]
        else:
            done = [(i, await j.log_fill(rec(i)))]
            await j.log_fill(rec(i, qty=2.0))  # a conflicting report of the same execId
        for k, new in done:
            if new:
                print("fill", rec(k).exec_id, flush=True)
        if j.conflicts > c0:
            print("conflict", rec(i).exec_id, flush=True)
        i += len(done)
asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["per_fill", "group"])
async def test_reported_fills_and_alarms_survive_sigkill(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "hydra.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(path), mode,
                                                stdout=asyncio.subprocess.PIPE, env=env)
    fills: set[str] = set()
    alarms: set[str] = set()
    assert proc.stdout is not None
    try:
        while len(alarms) < 80:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "writer process ended early"
            kind, exec_id = line.decode().split()
            (fills if kind == "fill" else alarms).add(exec_id)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    db = sqlite3.connect(path)
    stored = {r[0]: r[1] for r in db.execute("SELECT exec_id, qty FROM fills")}
    flagged = {r[0] for r in db.execute("SELECT exec_id FROM fill_conflicts WHERE cleared_at IS NULL")}
    n_ops = db.execute("SELECT COUNT(*) FROM ops_journal WHERE kind = 'FILL_CONFLICT'").fetchone()[0]
    db.close()
    assert fills <= set(stored) and all(stored[e] == 1.0 for e in fills)  # the first report is kept
    assert alarms <= flagged and n_ops == len(flagged)  # alarm row and journal entry committed together
