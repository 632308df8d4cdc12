"""The Store: one SQLite database per broker and account, opened safely.

Opening goes through checks that never write to a file they do not understand:
1. the single-instance lock (``hydra.lock``; a second engine on the same store is refused, naming
   the PID that holds it);
2. a read-only preflight: a file that is not SQLite or fails ``quick_check`` is corrupt; a schema
   version above what this code knows is too new; a store recorded for another account is refused;
3. a backup through SQLite's online backup API (consistent even with a WAL) before any migration,
   as ``hydra.db.bak-v<old>-<timestamp>``, keeping the last few;
4. WAL, foreign keys, busy timeout and full sync on the shared ``aiosqlite`` connection, then the
   pending migrations, each in its own transaction together with its ``user_version`` bump.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import aiosqlite
import structlog

from hydra_engine.clock import Clock, WallClock, to_iso
from hydra_engine.paths import DB_FILE_NAME, LOCK_FILE_NAME, store_dir
from hydra_engine.store.bars import BarRepo
from hydra_engine.store.cycles import CycleRepo
from hydra_engine.store.equity import EquityRepo
from hydra_engine.store.fill_conflicts import FillConflicts
from hydra_engine.store.kv import KeyValueStore
from hydra_engine.store.lock import LockHeldError, StoreLock, WriteGate
from hydra_engine.store.ops_journal import OpsJournal
from hydra_engine.store.orders import OrderRepo

log = structlog.get_logger(__name__)

MIGRATIONS_PACKAGE = "hydra_engine.store.migrations"
SQLITE_HEADER = b"SQLite format 3\x00"
BACKUP_PREFIX = ".bak-v"
_MODULE_RE = re.compile(r"^v(\d{3})_[A-Za-z0-9_]+$")


class StoreError(Exception):
    """Base of every store problem; the message says which file and what to do."""


class StoreLockedError(StoreError):
    """Another engine (the PID in the message) holds this store."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class AccountMismatchError(StoreError):
    """The store belongs to a different broker account."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer HYDRA; it is left untouched."""


class CorruptDatabaseError(StoreError):
    """The file is not a readable SQLite database; it is left untouched."""


class MigrationError(StoreError):
    """A migration failed; its transaction was rolled back (a backup was taken first)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def discover_migrations(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """Modules ``vNNN_*.py`` of ``package`` defining ``SQL``, ordered by NNN (duplicates refused)."""
    pkg = importlib.import_module(package)
    found: dict[int, Migration] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        m = _MODULE_RE.match(info.name)
        if not m:
            continue
        version = int(m.group(1))
        module = importlib.import_module(f"{package}.{info.name}")
        sql = getattr(module, "SQL", None)
        if not isinstance(sql, str) or not sql.strip():
            raise MigrationError(f"migration {package}.{info.name} must define a non-empty SQL string")
        if version in found:
            raise MigrationError(
                f"two migrations with version {version:03d}: {found[version].name} and {info.name}"
            )
        if version == 0:
            raise MigrationError(f"migration {info.name}: versions start at 001")
        found[version] = Migration(version, info.name, sql)
    return [found[v] for v in sorted(found)]


def latest_version(migrations: Sequence[Migration] | None = None) -> int:
    migs = discover_migrations() if migrations is None else migrations
    return max((m.version for m in migs), default=0)


_TRACK_SQL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at TEXT NOT NULL)"
)


def pending_migrations(current: int, recorded: set[int] | None, migrations: Sequence[Migration]) -> list[Migration]:
    """Migrations still to apply: those above ``current``, plus any lower one never recorded.

    ``recorded`` is the set in ``schema_migrations`` (None for a database without that table: then
    everything up to ``current`` counts as applied). Catching lower, unrecorded versions means a
    migration file that lands after a later one (v002 after v003) is still applied.
    """
    out = []
    for m in migrations:
        if m.version > current or (recorded is not None and m.version not in recorded):
            out.append(m)
    return out


def _script(m: Migration, new_version: int) -> str:
    return (
        f"BEGIN IMMEDIATE;\n{m.sql}\n;\n{_TRACK_SQL};\n"
        f"INSERT OR REPLACE INTO schema_migrations (version, name, applied_at) "
        f"VALUES ({m.version}, '{m.name}', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));\n"
        f"PRAGMA user_version = {new_version};\nCOMMIT;"
    )


async def _recorded_async(conn: aiosqlite.Connection) -> set[int] | None:
    async with conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'") as cur:
        if await cur.fetchone() is None:
            return None
    async with conn.execute("SELECT version FROM schema_migrations") as cur:
        return {int(r[0]) for r in await cur.fetchall()}


async def apply_migrations(conn: aiosqlite.Connection, migrations: Sequence[Migration] | None = None) -> list[int]:
    """Apply pending migrations (see ``pending_migrations``), each in its own transaction with its
    ``user_version`` bump; returns the versions applied."""
    migs = discover_migrations() if migrations is None else sorted(migrations, key=lambda m: m.version)
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    applied: list[int] = []
    for m in pending_migrations(current, await _recorded_async(conn), migs):
        if m.version < current:
            log.warning("store_migration_out_of_order", migration=m.name, version=m.version, schema=current)
        current = max(current, m.version)
        try:
            await conn.executescript(_script(m, current))
        except sqlite3.Error as exc:
            if conn.in_transaction:
                await conn.rollback()
            raise MigrationError(f"migration {m.name} failed and was rolled back: {exc}") from exc
        log.info("store_migrated", migration=m.name, version=m.version)
        applied.append(m.version)
    return applied


async def open_migrated(path: Path, *, migrate: bool = True) -> aiosqlite.Connection:
    """A bare connection with the store's durability settings and schema, for tools and tests.

    No account check, lock or backup (``Store`` does those); reopening an up-to-date file applies
    nothing, so it is safe to call on every open."""
    conn = await aiosqlite.connect(path)
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    if migrate:
        await apply_migrations(conn)
    return conn


def _recorded_sync(conn: sqlite3.Connection) -> set[int] | None:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone() is None:
        return None
    return {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}


def apply_migrations_sync(conn: sqlite3.Connection, migrations: Sequence[Migration] | None = None) -> list[int]:
    """``apply_migrations`` for a plain ``sqlite3`` connection (tools and other helpers' tests)."""
    migs = discover_migrations() if migrations is None else sorted(migrations, key=lambda m: m.version)
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    applied = []
    for m in pending_migrations(current, _recorded_sync(conn), migs):
        current = max(current, m.version)
        try:
            conn.executescript(_script(m, current))
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            raise MigrationError(f"migration {m.name} failed and was rolled back: {exc}") from exc
        applied.append(m.version)
    return applied


@dataclass(frozen=True, slots=True)
class _Preflight:
    exists: bool
    version: int
    pending: int
    account: str | None
    broker: str | None


def _ro_uri(path: Path) -> str:
    return f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"


def _preflight(path: Path, account: str, broker: str | None, migrations: Sequence[Migration]) -> _Preflight:
    """Read-only checks before anything writes to ``path``."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a database file")
    if not path.exists():
        return _Preflight(False, 0, 0, None, None)
    known = latest_version(migrations)
    untouched = f"The file was left untouched. {restore_hint(path)}"
    with open(path, "rb") as fh:
        header = fh.read(len(SQLITE_HEADER))
    if not header:
        # a store is only ever created whole (see ``_create_empty``): an empty file is a lost store
        raise CorruptDatabaseError(f"{path} is empty (zero bytes) where a store is expected. {untouched}")
    if header != SQLITE_HEADER:
        raise CorruptDatabaseError(f"{path} is not a SQLite database (bad header). {untouched}")
    try:
        ro = sqlite3.connect(_ro_uri(path), uri=True)
    except sqlite3.Error as exc:
        raise CorruptDatabaseError(f"{path} cannot be opened: {exc}. {untouched}") from exc
    try:
        version = int(ro.execute("PRAGMA user_version").fetchone()[0])
        check = ro.execute("PRAGMA quick_check").fetchall()
        if not check or check[0][0] != "ok":
            detail = "; ".join(str(r[0]) for r in check[:3])
            raise CorruptDatabaseError(f"{path} failed its integrity check ({detail}). {untouched}")
        if version > known:
            raise SchemaTooNewError(
                f"{path} has schema version {version} but this HYDRA knows versions up to {known}: "
                "it was written by a newer HYDRA. Upgrade HYDRA; the file was left untouched."
            )
        tables = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and tables:
            raise StoreError(
                f"{path} holds tables ({', '.join(sorted(tables)[:5])}) but no HYDRA schema version: "
                "it is not a HYDRA store. The file was left untouched."
            )
        stored_account = stored_broker = None
        if "store_meta" in tables:
            meta = dict(ro.execute("SELECT key, value FROM store_meta").fetchall())
            stored_account, stored_broker = meta.get("account"), meta.get("broker")
        pending = len(pending_migrations(version, _recorded_sync(ro), migrations))
    except sqlite3.DatabaseError as exc:
        raise CorruptDatabaseError(f"{path} is unreadable: {exc}. {untouched}") from exc
    finally:
        ro.close()
    if stored_account is not None and stored_account != account:
        raise AccountMismatchError(
            f"{path} belongs to account {stored_account!r}, not {account!r}: each account has its own store "
            f"directory (<data dir>/<broker>-<account>/)"
        )
    if broker is not None and stored_broker is not None and stored_broker != broker:
        raise AccountMismatchError(f"{path} belongs to broker {stored_broker!r}, not {broker!r}")
    return _Preflight(True, version, pending, stored_account, stored_broker)


def restore_hint(path: Path) -> str:
    """What to do about a lost or broken ``path``: the newest backup to restore, or that none exists."""
    backups = list_backups(path)
    if backups:
        newest = backups[-1]
        return (f"Restore the newest backup ({len(backups)} kept, taken before each schema upgrade): "
                f"move {path.name} aside, then copy {newest} to {path}.")
    return (f"There is no backup of it (backups {path.name}{BACKUP_PREFIX}* are taken before schema upgrades; "
            f"none exist in {path.parent}). To start a new, empty store on purpose, move {path} aside.")


def _create_empty(path: Path) -> None:
    """A new, empty SQLite file in WAL mode, made beside ``path`` and renamed into place, so a crash
    during creation never leaves a zero-byte ``path`` (which ``_preflight`` refuses as a lost store)."""
    tmp = path.with_name(path.name + ".new")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: could not switch to WAL journal mode (got {mode})")
    finally:
        con.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # directory fsync is best effort
        pass


def backup_database(path: Path, version: int, keep: int = 5) -> Path:
    """Copy ``path`` with SQLite's backup API to ``<name>.bak-v<version>-<UTC timestamp>``; prune old ones."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}{BACKUP_PREFIX}{version}-{stamp}")
    tmp = target.with_name(target.name + ".tmp")
    src = sqlite3.connect(_ro_uri(path), uri=True)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(tmp, target)
    for old in list_backups(path)[:-keep] if keep > 0 else []:
        try:
            old.unlink()
        except OSError:
            pass
    return target


def list_backups(path: Path) -> list[Path]:
    """Backups of ``path``, oldest first."""
    backups = [p for p in path.parent.glob(f"{path.name}{BACKUP_PREFIX}*") if not p.name.endswith(".tmp")]
    return sorted(backups, key=lambda p: (p.stat().st_mtime_ns, p.name))


class Store:
    """An open store: the shared connection, its write gate, and the repositories.

    Other parts (fill journal, breakers, model registry, agent journal) use ``conn`` directly;
    multi-statement writes should go through ``tx.transaction()``.
    """

    conn: aiosqlite.Connection
    path: Path
    account: str
    directory: Path

    def __init__(self, conn: aiosqlite.Connection, path: Path, account: str, broker: str | None,
                 lock: StoreLock | None, clock: Clock, schema_version: int, applied: list[int],
                 backup_path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self.account = account
        self.broker = broker
        self.directory = path.parent
        self.clock = clock
        self.schema_version = schema_version
        self.applied_migrations = applied
        self.backup_path = backup_path
        self.created = False
        """True when this open made the database (none existed): the engine then expects no exchange state."""
        self._lock = lock
        self._closed = False
        self.tx = WriteGate(conn)
        self.orders = OrderRepo(conn, self.tx, clock)
        self.cycles = CycleRepo(conn, self.tx, clock)
        self.equity = EquityRepo(conn, self.tx, clock)
        self.bars = BarRepo(conn, self.tx, clock)
        self.kv = KeyValueStore(conn, self.tx, clock)
        self.ops = OpsJournal(conn, self.tx, clock)
        self.fill_conflicts = FillConflicts(conn, self.tx, clock)
        """Open conflicting-fill alarms per market (trading waits): see store/fill_conflicts.py."""

    @classmethod
    async def open(cls, data_dir: Path, broker: str, account: str, *, lock: bool = True,
                   clock: Clock | None = None, backups_kept: int = 5, readonly: bool = False) -> "Store":
        """Open (creating if needed) ``<data_dir>/<broker>-<account>/hydra.db``."""
        directory = store_dir(Path(data_dir), broker, account)
        return await cls.open_path(directory / DB_FILE_NAME, account, lock=lock, broker=broker, clock=clock,
                                   backups_kept=backups_kept, readonly=readonly)

    @classmethod
    async def open_path(cls, db_path: Path, account: str, *, lock: bool = True, broker: str | None = None,
                        clock: Clock | None = None, backups_kept: int = 5,
                        migrations: Sequence[Migration] | None = None, readonly: bool = False) -> "Store":
        """Open the database at ``db_path`` for ``account`` (the lock file sits beside it).

        ``readonly`` (for ``status``, ``journal``, ``fill-report`` while an engine runs) takes no
        lock, never migrates or writes, and refuses a missing or not-yet-migrated store.
        """
        if not account:
            raise StoreError("an account id is needed to open a store")
        path = Path(db_path).expanduser().absolute()
        clock = clock or WallClock()
        migs = discover_migrations() if migrations is None else sorted(migrations, key=lambda m: m.version)
        if readonly:
            return await cls._open_readonly(path, account, broker, clock, migs)
        held: StoreLock | None = None
        lock_path = path.with_name(LOCK_FILE_NAME if path.name == DB_FILE_NAME else path.stem + ".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if lock:
                held = StoreLock.acquire(lock_path)
        except OSError as exc:
            raise StoreError(f"cannot create or lock the store in {path.parent}: {exc.strerror or exc}") from exc
        except LockHeldError as exc:
            who = f"process {exc.pid}" if exc.pid is not None else "another process"
            raise StoreLockedError(
                f"store {path.parent} is in use by {who} (lock {lock_path}): another HYDRA engine is "
                "running on this account; stop it first", exc.pid,
            ) from None
        conn: aiosqlite.Connection | None = None
        try:
            pre = await asyncio.to_thread(_preflight, path, account, broker, migs)
            created = not pre.exists
            if created:  # a new store only where none exists, and made whole
                await asyncio.to_thread(_create_empty, path)
            backup: Path | None = None
            if pre.exists and pre.pending:
                backup = await asyncio.to_thread(backup_database, path, pre.version, backups_kept)
                log.info("store_backed_up", path=str(path), backup=str(backup), version=pre.version)
            conn = await aiosqlite.connect(path)
            await conn.execute("PRAGMA busy_timeout = 5000")
            mode = await _scalar(conn, "PRAGMA journal_mode = WAL")
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: could not switch to WAL journal mode (got {mode})")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA synchronous = FULL")
            applied = await apply_migrations(conn, migs)
            await _write_meta(conn, account, broker, clock)
            version = int(await _scalar(conn, "PRAGMA user_version"))
        except BaseException as exc:
            if conn is not None:
                await conn.close()
            if held is not None:
                held.release()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise StoreError(f"cannot open the store {path}: {exc}") from exc
            raise
        log.info("store_opened", path=str(path), account=account, version=version, migrated=applied, created=created)
        store = cls(conn, path, account, broker, held, clock, version, applied, backup)
        store.created = created
        return store

    @classmethod
    async def _open_readonly(cls, path: Path, account: str, broker: str | None, clock: Clock,
                             migs: Sequence[Migration]) -> "Store":
        pre = await asyncio.to_thread(_preflight, path, account, broker, migs)
        if not pre.exists:
            raise StoreError(f"no store at {path}: start the engine once to create it")
        if pre.pending:
            raise StoreError(
                f"{path} is at schema version {pre.version} and needs {pre.pending} migration(s): "
                "start the engine once to upgrade it"
            )
        conn = await aiosqlite.connect(_ro_uri(path), uri=True)
        try:
            await conn.execute("PRAGMA busy_timeout = 5000")
            version = int(await _scalar(conn, "PRAGMA user_version"))
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path, account, broker, None, clock, version, [], None)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL) and release the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.conn.commit()
            await self.conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()
        log.info("store_closed", path=str(self.path))

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def backups(self) -> list[Path]:
        return list_backups(self.path)

    async def meta(self) -> dict[str, str]:
        async with self.conn.execute("SELECT key, value FROM store_meta") as cur:
            return {k: v for k, v in await cur.fetchall()}


async def _scalar(conn: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> Any:
    async with conn.execute(sql, args) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


async def _write_meta(conn: aiosqlite.Connection, account: str, broker: str | None, clock: Clock) -> None:
    now = to_iso(clock.now())
    rows = [("account", account), ("created_at", now)]
    if broker is not None:
        rows.append(("broker", broker))
    await conn.executemany("INSERT OR IGNORE INTO store_meta (key, value) VALUES (?, ?)", rows)
    await conn.execute(
        "INSERT INTO store_meta (key, value) VALUES ('opened_at', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (now,)
    )
    await conn.commit()
    stored = await _scalar(conn, "SELECT value FROM store_meta WHERE key = 'account'")
    if stored != account:
        raise AccountMismatchError(f"store belongs to account {stored!r}, not {account!r}")
