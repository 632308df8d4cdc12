"""FillJournal on a real SQLite file: durable, exactly once by execId, commissions, queries, blocks."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import struct
from pathlib import Path

import aiosqlite
import pytest

from hydra_engine.execution.fill_journal import BLOCK_FILLS, FillJournal, FillRecord
from hydra_engine.store.database import open_migrated

T0 = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)


async def open_db(path: Path, migrate: bool = True) -> aiosqlite.Connection:
    return await open_migrated(path, migrate=migrate)


@pytest.fixture
async def db(tmp_path: Path):
    conn = await open_db(tmp_path / "fills.db")
    yield conn
    await conn.close()


def rec(i: int = 0, **kw) -> FillRecord:
    base = dict(exec_id=f"0000e1.{i:06d}.01.01", fill_time=T0 + dt.timedelta(seconds=i), symbol="CL",
                contract_month="202701", direction="BUY", qty=1.0, fill_price=70.03, limit_price=70.05,
                arrival_mid=70.0, predicted_slippage=0.02, latency_ms=850.0, order_ref=f"H-CL-{i}",
                perm_id=1000 + i, commission=2.25, data_type="live")
    base.update(kw)
    return FillRecord(**base)  # type: ignore[arg-type]


async def test_log_fill_is_durable_and_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "fills.db"
    conn = await open_db(path)
    j = FillJournal(conn)
    assert await j.log_fill(rec(1)) is True
    assert await j.log_fill(rec(1)) is False  # replayed execution
    assert await j.log_fill(rec(1, fill_price=99.0)) is False  # same execId, different data: first wins
    # a second, independent connection sees the committed row (no close/commit needed first)
    other = sqlite3.connect(path)
    rows = other.execute("SELECT exec_id, fill_price, actual_slippage FROM fills").fetchall()
    other.close()
    assert rows == [("0000e1.000001.01.01", 70.03, pytest.approx(0.03))]
    await conn.close()


async def test_record_round_trip_and_sign_convention(db) -> None:
    j = FillJournal(db)
    buy, sell = rec(1), rec(2, direction="SELL", fill_price=69.96, data_type="delayed")
    assert buy.actual_slippage == pytest.approx(0.03) and sell.actual_slippage == pytest.approx(0.04)
    assert buy.actual_slippage_bps == pytest.approx(0.03 / 70 * 1e4)
    await j.log_fill(buy)
    await j.log_fill(sell)
    got = await j.fills()
    assert [f.exec_id for f in got] == [sell.exec_id, buy.exec_id]  # newest first
    assert got[1] == buy and got[0] == sell
    assert got[1].fill_time.tzinfo is not None


async def test_commission_report_after_execution_updates_row(db) -> None:
    j = FillJournal(db)
    await j.log_fill(rec(1, commission=None))
    assert (await j.get(rec(1).exec_id)).commission is None  # type: ignore[union-attr]
    assert await j.set_commission(rec(1).exec_id, 2.47) is True
    assert (await j.get(rec(1).exec_id)).commission == pytest.approx(2.47)  # type: ignore[union-attr]
    # a report before its execution is applied when the execution arrives
    assert await j.set_commission(rec(2).exec_id, 1.5) is False
    await j.log_fill(rec(2, commission=None))
    assert (await j.get(rec(2).exec_id)).commission == pytest.approx(1.5)  # type: ignore[union-attr]
    assert await j.set_commission(rec(1).exec_id, 1.7976931348623157e308) is False  # IB "unset"


async def test_queries_by_symbol_since_and_limit(db) -> None:
    j = FillJournal(db)
    for i in range(10):
        await j.log_fill(rec(i, symbol="CL" if i % 2 else "ZC"))
    assert len(await j.fills(symbol="CL")) == 5
    assert [f.exec_id for f in await j.fills(limit=2)] == [rec(9).exec_id, rec(8).exec_id]
    since = await j.fills(since=T0 + dt.timedelta(seconds=7))
    assert [f.exec_id for f in since] == [rec(9).exec_id, rec(8).exec_id, rec(7).exec_id]
    assert len(await j.fills(symbol="ZC", since=T0 + dt.timedelta(seconds=5), limit=10)) == 2
    with pytest.raises(ValueError, match="timezone-aware"):
        await j.fills(since=dt.datetime(2026, 1, 1))


async def test_group_commit_batches_concurrent_fills(db) -> None:
    j = FillJournal(db, group_commit=True)
    recs = [rec(i) for i in range(300)] + [rec(5)]
    results = await asyncio.gather(*(j.log_fill(r) for r in recs))
    assert results.count(True) == 300 and results[-1] is False
    await j.flush()
    async with db.execute("SELECT COUNT(*) FROM fills") as cur:
        assert (await cur.fetchone())[0] == 300
    assert not db.in_transaction  # everything committed
    assert 1 <= j.commits < 50  # fills in flight together shared their commits


CHILD = r"""
import asyncio, datetime as dt, sys
import aiosqlite
from hydra_engine.execution.fill_journal import FillJournal, FillRecord
async def main():
    conn = await aiosqlite.connect(sys.argv[1])
    await conn.execute("PRAGMA synchronous = FULL")
    j = FillJournal(conn, group_commit=sys.argv[2] == "group")
    t0 = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
    i = 0
    while True:
        recs = [FillRecord(exec_id=f"x{i + k}", fill_time=t0, symbol="CL", contract_month="202703",
                           direction="BUY", qty=1, fill_price=70.01, arrival_mid=70.0, predicted_slippage=0.01)
                for k in range(4)]
        for r, ok in zip(recs, await asyncio.gather(*(j.log_fill(r) for r in recs))):
            if ok:
                print(r.exec_id, flush=True)  # acknowledged: must survive the kill
        i += 4
asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["per_fill", "group"])
async def test_acknowledged_fills_survive_a_kill(tmp_path: Path, mode: str) -> None:
    import os
    import signal
    import sys

    path = tmp_path / "crash.db"
    await (await open_db(path)).close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(path), mode,
                                                stdout=asyncio.subprocess.PIPE, env=env)
    acked: list[str] = []
    assert proc.stdout is not None
    while len(acked) < 150:  # past two folds of the tail into blocks
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line, "writer process ended early"
        acked.append(line.decode().strip())
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    db = sqlite3.connect(path)
    stored = {r[0] for r in db.execute("SELECT exec_id FROM fills")}
    n_blocks = db.execute("SELECT COALESCE(SUM(n_fills), 0) FROM fill_slippage_blocks").fetchone()[0]
    mark = db.execute("SELECT folded_through_id FROM fill_slippage_mark").fetchone()[0]
    n_tail = db.execute("SELECT COUNT(*) FROM fills WHERE id > ?", (mark,)).fetchone()[0]
    db.close()
    assert set(acked) <= stored
    assert n_blocks >= BLOCK_FILLS and n_tail < BLOCK_FILLS  # folded, and the tail stayed short
    assert n_blocks + n_tail == len(stored)  # blocks, mark and rows committed together


async def test_slippage_blocks_match_the_rows(db) -> None:
    j = FillJournal(db, group_commit=True)
    n = BLOCK_FILLS * 2 + 5
    recs = [rec(i, predicted_slippage=0.01 * (i % 7), fill_price=70.0 + 0.01 * (i % 5)) for i in range(n)]
    recs.append(rec(n + 1, predicted_slippage=None))  # no prediction: row yes, block no
    await asyncio.gather(*(j.log_fill(r) for r in recs))
    async with db.execute("SELECT block_no, n_fills, data FROM fill_slippage_blocks ORDER BY block_no") as cur:
        blocks = await cur.fetchall()
    assert [(b[0], b[1]) for b in blocks] == [(0, BLOCK_FILLS), (1, BLOCK_FILLS), (2, 5)]
    triples = [t for b in blocks for t in struct.iter_unpack("<ddd", b[2])]
    assert triples == [(r.predicted_slippage, r.actual_slippage, r.arrival_mid) for r in recs[:n]]
    assert await j.rebuild_blocks() == n
    async with db.execute("SELECT block_no, n_fills, data FROM fill_slippage_blocks ORDER BY block_no") as cur:
        assert await cur.fetchall() == blocks


async def _packed_and_tail(db) -> tuple[list[tuple[float, float, float]], int]:
    async with db.execute("SELECT data FROM fill_slippage_blocks ORDER BY symbol, data_type, block_no") as cur:
        packed = [t for (b,) in await cur.fetchall() for t in struct.iter_unpack("<ddd", b)]
    async with db.execute("SELECT folded_through_id FROM fill_slippage_mark") as cur:
        mark = (await cur.fetchone())[0]
    return packed, mark


async def test_per_fill_commits_fold_the_tail_every_block(db) -> None:
    """Invariant: fills above the mark are the unpacked tail (< BLOCK_FILLS); everything at or
    below it is packed, in journal order; a journal reopened on the file carries on from the mark."""
    j = FillJournal(db)
    recs = [rec(i, fill_price=70.0 + 0.01 * (i % 9)) for i in range(BLOCK_FILLS * 2 + 10)]
    for r in recs[:BLOCK_FILLS - 1]:
        await j.log_fill(r)
    packed, mark = await _packed_and_tail(db)
    assert packed == [] and mark == 0  # 63 commits: no block written yet
    await j.log_fill(recs[BLOCK_FILLS - 1])
    packed, mark = await _packed_and_tail(db)
    assert len(packed) == BLOCK_FILLS and mark == BLOCK_FILLS
    j2 = FillJournal(db)  # e.g. after a restart: reads the mark from the file
    for r in recs[BLOCK_FILLS:]:
        await j2.log_fill(r)
    packed, mark = await _packed_and_tail(db)
    assert mark == 2 * BLOCK_FILLS
    assert packed == [(r.predicted_slippage, r.actual_slippage, r.arrival_mid) for r in recs[:mark]]
    async with db.execute("SELECT COUNT(*) FROM fills WHERE id > ?", (mark,)) as cur:
        assert (await cur.fetchone())[0] == 10
    assert await j2.rebuild_blocks() == len(recs)
    packed, mark = await _packed_and_tail(db)
    assert mark == len(recs) and len(packed) == len(recs)


async def test_failed_fold_is_rolled_back_with_its_fill(db) -> None:
    j = FillJournal(db)
    for i in range(BLOCK_FILLS - 1):
        await j.log_fill(rec(i))
    await db.execute("CREATE TRIGGER no_blocks BEFORE INSERT ON fill_slippage_blocks "
                     "BEGIN SELECT RAISE(ABORT, 'blocks refused'); END")
    await db.commit()
    with pytest.raises(sqlite3.Error, match="blocks refused"):
        await j.log_fill(rec(BLOCK_FILLS))  # completes the tail: the fold fails, so does the fill
    assert await j.get(rec(BLOCK_FILLS).exec_id) is None
    await db.execute("DROP TRIGGER no_blocks")
    await db.commit()
    assert await j.log_fill(rec(BLOCK_FILLS)) is True
    packed, mark = await _packed_and_tail(db)
    assert len(packed) == BLOCK_FILLS and mark == BLOCK_FILLS


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(fill_price=float("nan")), "fill_price=nan"),
        (dict(fill_price=-1.0), "fill_price=-1.0 must be > 0"),
        (dict(arrival_mid=0.0), "arrival_mid=0.0 must be > 0"),
        (dict(qty=0), "qty=0"),
        (dict(direction="LONG"), "direction='LONG'"),
        (dict(data_type="frozen"), "data_type='frozen'"),
        (dict(exec_id=""), "exec_id"),
        (dict(fill_time=dt.datetime(2026, 1, 1)), "timezone-aware"),
        (dict(actual_slippage=0.5), "disagrees"),
        (dict(latency_ms=float("inf")), "latency_ms=inf must be finite"),
    ],
)
def test_bad_records_are_refused_naming_the_field(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        rec(1, **kw)


def test_unknowns_are_none() -> None:
    r = rec(1, arrival_mid=None, predicted_slippage=float("nan"), limit_price=None, latency_ms=None)
    assert r.actual_slippage is None and r.predicted_slippage is None and r.actual_slippage_bps is None


async def test_failed_write_raises_and_keeps_the_journal_usable(db) -> None:
    j = FillJournal(db)
    await db.execute("CREATE TRIGGER no_zc BEFORE INSERT ON fills WHEN NEW.symbol = 'ZC' "
                     "BEGIN SELECT RAISE(ABORT, 'ZC refused'); END")
    await db.commit()
    with pytest.raises(sqlite3.Error, match="ZC refused"):
        await j.log_fill(rec(1, symbol="ZC"))
    assert await j.log_fill(rec(2)) is True
    async with db.execute("SELECT COUNT(*) FROM fill_slippage_blocks WHERE symbol = 'ZC'") as cur:
        assert (await cur.fetchone())[0] == 0


async def test_through_the_store_when_present(tmp_path: Path) -> None:
    database = pytest.importorskip("hydra_engine.store.database")
    store = await database.Store.open_path(tmp_path / "hydra.db", "DU123", lock=False)
    try:
        j = FillJournal(store.conn, tx=store.tx)
        assert await j.log_fill(rec(1)) is True
        assert await j.log_fill(rec(1)) is False
        assert [f.exec_id for f in await j.fills()] == [rec(1).exec_id]
    finally:
        await store.close()


async def test_a_batch_with_repeats_is_redone_record_by_record_in_one_commit(db) -> None:
    """The batch's one executemany inserts every row or none: a repeat (journalled before, or twice
    in the batch) sends it record by record, still in one transaction, each repeat answered False."""
    j = FillJournal(db, group_commit=True)
    assert await j.log_fill(rec(1)) is True
    commits = j.commits
    batch = [rec(2), rec(1), rec(3), rec(3), rec(4)]
    assert await asyncio.gather(*(j.log_fill(r) for r in batch)) == [True, False, True, False, True]
    assert j.commits == commits + 1
    async with db.execute("SELECT exec_id FROM fills ORDER BY id") as cur:
        assert [r[0] for r in await cur.fetchall()] == [rec(i).exec_id for i in (1, 2, 3, 4)]
    assert not db.in_transaction


async def test_fold_packs_this_transactions_rows_from_memory_and_reads_the_rest(tmp_path: Path) -> None:
    """A fold packs the records it was handed only when their ids are the newest ones; otherwise it
    reads every unpacked row back. Both give the blocks ``rebuild_blocks`` makes from the rows."""
    from hydra_engine.execution import fill_journal as fj
    from hydra_engine.store.database import apply_migrations_sync

    def blocks(con: sqlite3.Connection) -> list[tuple]:
        return con.execute("SELECT symbol, data_type, block_no, n_fills, data FROM fill_slippage_blocks "
                           "ORDER BY symbol, data_type, block_no").fetchall()

    recs = [rec(i, symbol="CL" if i % 3 else "ZC", fill_price=70.0 + 0.01 * (i % 7),
                predicted_slippage=None if i % 11 == 0 else 0.01 * (i % 5)) for i in range(150)]
    rows = [r._row() for r in recs]  # noqa: SLF001
    got = []
    for fresh_from in (41, 40, 0):  # ids of recs[40:] are 41..150: right, one off, unknown
        con = sqlite3.connect(tmp_path / f"f{fresh_from}.db", isolation_level=None)
        apply_migrations_sync(con)
        con.execute("BEGIN")
        con.executemany(fj._INSERT, rows)  # noqa: SLF001
        assert fj._fold(con, recs[40:], fresh_from) == 150  # noqa: SLF001
        con.execute("COMMIT")
        got.append(blocks(con))
        con.close()
    assert got[0] == got[1] == got[2] and got[0]
    conn = await open_db(tmp_path / "f0.db")
    assert await FillJournal(conn).rebuild_blocks() == sum(1 for r in recs if r.predicted_slippage is not None)
    async with conn.execute("SELECT symbol, data_type, block_no, n_fills, data FROM fill_slippage_blocks "
                            "ORDER BY symbol, data_type, block_no") as cur:
        assert await cur.fetchall() == got[0]
    await conn.close()


async def test_one_time_index_serves_the_journal_queries(db) -> None:
    """v011 dropped ``fills_symbol_time``: a fill writes the execId key and ``fills_time`` only, and
    the newest-first reads still walk ``fills_time`` instead of sorting the table."""
    async with db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'fills'") as cur:
        names = {r[0] for r in await cur.fetchall()}
    assert "fills_symbol_time" not in names and "fills_time" in names
    for where in ("", " WHERE fill_time >= '2026'", " WHERE symbol = 'CL'"):
        async with db.execute("EXPLAIN QUERY PLAN SELECT exec_id FROM fills" + where +
                              " ORDER BY fill_time DESC, id DESC LIMIT 200") as cur:
            plan = " ".join(str(r[-1]) for r in await cur.fetchall())
        assert "fills_time" in plan and "TEMP B-TREE" not in plan, plan


def test_v011_drops_the_index_and_keeps_the_fills(tmp_path: Path) -> None:
    from hydra_engine.store.database import apply_migrations_sync, discover_migrations

    con = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    apply_migrations_sync(con, [m for m in discover_migrations() if m.version < 11])
    con.execute("INSERT INTO fills (exec_id, fill_time, symbol, direction, qty, fill_price, data_type) "
                "VALUES ('e1', '2026-11-23T15:00:00.000000+00:00', 'CL', 'BUY', 1, 70.0, 'live')")
    assert con.execute("SELECT 1 FROM sqlite_master WHERE name = 'fills_symbol_time'").fetchone()
    assert 11 in apply_migrations_sync(con)
    assert con.execute("SELECT 1 FROM sqlite_master WHERE name = 'fills_symbol_time'").fetchone() is None
    assert con.execute("SELECT exec_id FROM fills").fetchall() == [("e1",)]
    con.close()


async def test_a_bad_record_in_a_batch_fails_alone(db) -> None:
    j = FillJournal(db, group_commit=True)
    await db.execute("CREATE TRIGGER no_zc BEFORE INSERT ON fills WHEN NEW.symbol = 'ZC' "
                     "BEGIN SELECT RAISE(ABORT, 'ZC refused'); END")
    await db.commit()
    res = await asyncio.gather(j.log_fill(rec(1)), j.log_fill(rec(2, symbol="ZC")), j.log_fill(rec(3)),
                               return_exceptions=True)
    assert res[0] is True and res[2] is True
    assert isinstance(res[1], sqlite3.Error) and "ZC refused" in str(res[1])
    assert [f.exec_id for f in await j.fills()] == [rec(3).exec_id, rec(1).exec_id]
    assert j.commits == 1 and not db.in_transaction
