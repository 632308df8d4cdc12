"""Store opening: layout, pragmas, migrations with backups, refusals that leave files untouched."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from hydra_engine.store import database as db
from hydra_engine.store.database import (
    AccountMismatchError,
    CorruptDatabaseError,
    Migration,
    MigrationError,
    SchemaTooNewError,
    Store,
    StoreError,
    discover_migrations,
    latest_version,
)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def core_only() -> list[Migration]:
    return [m for m in discover_migrations() if m.version == 1]


async def test_layout_pragmas_and_meta(tmp_path: Path) -> None:
    s = await Store.open(tmp_path, "sim", "DU1234567")
    try:
        assert s.path == tmp_path / "sim-DU1234567" / "hydra.db"
        assert s.directory == tmp_path / "sim-DU1234567"
        assert (s.directory / "hydra.lock").read_text().strip() == str(os.getpid())
        assert await db._scalar(s.conn, "PRAGMA journal_mode") == "wal"
        assert await db._scalar(s.conn, "PRAGMA foreign_keys") == 1
        assert await db._scalar(s.conn, "PRAGMA busy_timeout") == 5000
        assert s.schema_version == latest_version()
        assert s.applied_migrations == sorted(s.applied_migrations) and s.applied_migrations[0] == 1
        meta = await s.meta()
        assert meta["account"] == "DU1234567" and meta["broker"] == "sim"
        assert s.backup_path is None  # a new database has nothing to back up
    finally:
        await s.close()
    await s.close()  # idempotent


def test_discovered_migrations_are_ordered_and_unique() -> None:
    migs = discover_migrations()
    versions = [m.version for m in migs]
    assert versions == sorted(set(versions))
    assert migs[0].name == "v001_core"


async def test_migrations_apply_in_order_after_backup(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    s = await Store.open_path(path, "DU1", migrations=core_only())
    assert s.schema_version == 1
    await s.kv.set_raw("marker", "before-upgrade")
    await s.close()

    extra = [
        Migration(7, "v007_second", "CREATE TABLE t7 (x INTEGER); INSERT INTO t7 SELECT COUNT(*) FROM t5;"),
        Migration(5, "v005_first", "CREATE TABLE t5 (x INTEGER); INSERT INTO t5 VALUES (1);"),
    ]
    s = await Store.open_path(path, "DU1", migrations=core_only() + extra)
    try:
        assert s.applied_migrations == [5, 7]  # ordered by version, not by list position
        assert s.schema_version == 7
        assert await db._scalar(s.conn, "SELECT x FROM t7") == 1  # v007 saw v005's table
        assert s.backup_path is not None and s.backup_path.name.startswith("hydra.db.bak-v1-")
        assert s.backups() == [s.backup_path]
    finally:
        await s.close()
    # The backup is a consistent copy of the old database (taken with the backup API).
    bak = sqlite3.connect(s.backup_path)
    try:
        assert bak.execute("PRAGMA user_version").fetchone()[0] == 1
        assert bak.execute("SELECT value FROM kv WHERE key = 'marker'").fetchone()[0] == '"before-upgrade"'
        assert bak.execute("SELECT name FROM sqlite_master WHERE name = 't5'").fetchone() is None
    finally:
        bak.close()


async def test_late_lower_migration_is_still_applied(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    three = Migration(3, "v003_x", "CREATE TABLE t3 (x INTEGER);")
    s = await Store.open_path(path, "DU1", migrations=core_only() + [three])
    await s.close()
    two = Migration(2, "v002_late", "CREATE TABLE t2 (x INTEGER);")
    s = await Store.open_path(path, "DU1", migrations=core_only() + [two, three])
    try:
        assert s.applied_migrations == [2]
        assert s.schema_version == 3
        assert await db._scalar(s.conn, "SELECT COUNT(*) FROM t2") == 0
    finally:
        await s.close()


async def test_failed_migration_rolls_back_its_own_transaction(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    s = await Store.open_path(path, "DU1", migrations=core_only())
    await s.close()
    good = Migration(2, "v002_good", "CREATE TABLE good (x INTEGER);")
    bad = Migration(3, "v003_bad", "CREATE TABLE half (x INTEGER); INSERT INTO missing_table VALUES (1);")
    with pytest.raises(MigrationError, match="v003_bad.*missing_table"):
        await Store.open_path(path, "DU1", migrations=core_only() + [good, bad])
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 2  # v002 committed on its own
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        assert "good" in names and "half" not in names
    finally:
        con.close()
    # The lock was released after the failure.
    s = await Store.open_path(path, "DU1", migrations=core_only() + [good])
    await s.close()


async def test_backups_are_pruned(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    migs = core_only()
    s = await Store.open_path(path, "DU1", migrations=migs)
    await s.close()
    for v in range(2, 6):
        migs = migs + [Migration(v, f"v{v:03d}_m", f"CREATE TABLE m{v} (x INTEGER);")]
        s = await Store.open_path(path, "DU1", migrations=migs, backups_kept=2)
        await s.close()
    names = [p.name for p in s.backups()]
    assert len(names) == 2
    assert names[0].startswith("hydra.db.bak-v3-") and names[1].startswith("hydra.db.bak-v4-")


async def test_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE future (x INTEGER)")
    con.execute(f"PRAGMA user_version = {latest_version() + 5}")
    con.commit()
    con.close()
    before = file_hash(path)
    with pytest.raises(SchemaTooNewError, match=f"schema version {latest_version() + 5}.*untouched"):
        await Store.open_path(path, "DU1")
    assert file_hash(path) == before
    assert not path.with_name("hydra.db-wal").exists()
    assert list(tmp_path.glob("hydra.db.bak-*")) == []
    with pytest.raises(SchemaTooNewError):  # the lock was released: same error, not "locked"
        await Store.open_path(path, "DU1")


@pytest.mark.parametrize("sqlite_header", [False, True])
async def test_corrupt_file_is_refused_and_untouched(tmp_path: Path, sqlite_header: bool) -> None:
    path = tmp_path / "hydra.db"
    junk = os.urandom(8192)
    if sqlite_header:
        junk = b"SQLite format 3\x00" + junk[16:]
    path.write_bytes(junk)
    before = file_hash(path)
    with pytest.raises(CorruptDatabaseError, match="untouched"):
        await Store.open_path(path, "DU1")
    assert file_hash(path) == before
    assert list(tmp_path.glob("hydra.db.bak-*")) == []


async def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE someone_elses (x INTEGER)")
    con.commit()
    con.close()
    before = file_hash(path)
    with pytest.raises(StoreError, match="not a HYDRA store"):
        await Store.open_path(path, "DU1")
    assert file_hash(path) == before


async def test_account_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    s = await Store.open_path(path, "DU1111111", broker="ib")
    await s.close()
    before = file_hash(path)
    with pytest.raises(AccountMismatchError, match="DU1111111.*not 'DU2222222'"):
        await Store.open_path(path, "DU2222222")
    with pytest.raises(AccountMismatchError, match="broker 'ib'"):
        await Store.open_path(path, "DU1111111", broker="sim")
    assert file_hash(path) == before
    s = await Store.open_path(path, "DU1111111")
    await s.close()


async def test_store_dirs_separate_accounts(tmp_path: Path) -> None:
    a = await Store.open(tmp_path, "sim", "DU1")
    b = await Store.open(tmp_path, "ib", "DU1")
    try:
        assert a.path != b.path
        await a.kv.set_raw("who", "a")
        assert await a.kv.items() == {"who": "a"}
        assert await b.kv.items() == {}
    finally:
        await a.close()
        await b.close()


async def test_bad_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="account"):
        await Store.open(tmp_path, "sim", "../etc")
    with pytest.raises(StoreError, match="account id"):
        await Store.open_path(tmp_path / "x.db", "")


async def test_readonly_open_alongside_a_running_engine(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        await Store.open(tmp_path, "sim", "DU1", readonly=True)
    engine = await Store.open(tmp_path, "sim", "DU1")
    try:
        await engine.kv.set_raw("paused", True)
        viewer = await Store.open(tmp_path, "sim", "DU1", readonly=True)
        try:
            assert await viewer.kv.items() == {"paused": True}
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await viewer.kv.set_raw("paused", False)
            await engine.kv.set_raw("paused", False)  # the engine keeps writing meanwhile
            assert await viewer.kv.items() == {"paused": False}
        finally:
            await viewer.close()
        with pytest.raises(AccountMismatchError):
            await Store.open_path(engine.path, "DU2", readonly=True)
    finally:
        await engine.close()


async def test_readonly_refuses_a_store_needing_migration(tmp_path: Path) -> None:
    path = tmp_path / "hydra.db"
    s = await Store.open_path(path, "DU1", migrations=core_only())
    await s.close()
    before = file_hash(path)
    with pytest.raises(StoreError, match="needs 1 migration"):
        await Store.open_path(path, "DU1", readonly=True,
                              migrations=core_only() + [Migration(2, "v002_x", "CREATE TABLE x (y);")])
    assert file_hash(path) == before


async def test_unwritable_location_gives_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create or lock the store"):
        await Store.open_path(blocker / "sub" / "hydra.db", "DU1")
    with pytest.raises(StoreError, match="is a directory"):
        await Store.open_path(tmp_path, "DU1", lock=False)
