"""ModelRegistry: versioned models on disk, indexed in the store, with one champion per market.

Files first, row second: ``register`` writes ``models/<version>/`` through a temporary directory
and a rename, and only then commits the row, so a row never points at missing or half-written
files (a crash leaves at most an orphan directory). ``promote`` and ``rollback`` switch the
champion in one transaction; a partial unique index in the schema (v006, per market; v003 before)
makes two champions of one market impossible. A registry is scoped to one market (or the user's
group of markets): ``for_market("CL")`` gives the view the runner and that market's agent use;
the unscoped registry (``market=None``) sees the rows of the old single-champion schema. The runner asks for the champion at every signal; the loaded model is cached and
reloaded only when the champion's version changes, including changes made by another process
(``hydra-tui rollback``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import structlog

from hydra_engine.model.baseline import BaselineModel, ModelError

log = structlog.get_logger(__name__)

STATUSES = ("candidate", "champion", "archived", "rejected")
TMP_PREFIX = ".tmp-"


class RegistryError(RuntimeError):
    """A registry operation cannot be done (unknown version, no previous champion, bad files)."""


class ClockLike(Protocol):
    def now(self) -> dt.datetime: ...


class WriteGateLike(Protocol):
    """The store's one-writer-at-a-time gate (``Store.tx``): commits or rolls back a block."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]: ...


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One registered model version as the store describes it. Times are ISO-8601 UTC strings."""

    version: str
    family: str
    status: str
    content_hash: str
    path: str
    """Directory name under the registry's ``models_dir``."""
    parent: str | None
    mutation: str | None
    spec: dict[str, Any]
    metrics: dict[str, Any]
    train_start: str | None
    train_end: str | None
    n_train: int | None
    created_at: str
    promoted_at: str | None
    archived_at: str | None
    superseded_by: str | None
    previous_champion: str | None
    status_reason: str | None
    market: str = ""
    """Market (or group of markets) the model belongs to; '' for rows of the old schema."""


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """One line of the registry's audit trail."""

    id: int
    at: str
    kind: str
    version: str
    previous: str | None
    reason: str | None


_COLUMNS = (
    "version, family, status, content_hash, path, parent, mutation, spec_json, metrics_json, "
    "train_start, train_end, n_train, created_at, promoted_at, archived_at, superseded_by, "
    "previous_champion, status_reason, market"
)


def _record(row: Any) -> ModelRecord:
    (version, family, status, chash, path, parent, mutation, spec_json, metrics_json, t0, t1, n,
     created, promoted, archived, superseded, previous, reason, market) = row
    return ModelRecord(
        version, family, status, chash, path, parent, mutation, json.loads(spec_json),
        json.loads(metrics_json), t0, t1, n, created, promoted, archived, superseded, previous, reason, market or "",
    )


def _metrics_dict(metrics: Any) -> dict[str, Any]:
    if metrics is None:
        return {}
    if hasattr(metrics, "summary") and callable(metrics.summary):
        metrics = metrics.summary()
    if not isinstance(metrics, Mapping):
        raise RegistryError(f"register: metrics must be a mapping or have .summary(), got {type(metrics).__name__}")
    return dict(metrics)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_tree(path: Path) -> int:
    """Delete a version's directory; returns the bytes its files held."""
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    shutil.rmtree(path)
    return size


class ModelRegistry:
    """Models in ``models_dir/<version>/`` plus their rows in the store's ``models`` table."""

    def __init__(
        self,
        store_conn: aiosqlite.Connection,
        models_dir: str | Path,
        clock: ClockLike | None = None,
        write_gate: WriteGateLike | None = None,
        market: str | None = None,
        *,
        lock: asyncio.Lock | None = None,
    ) -> None:
        """``write_gate``: pass the store's ``Store.tx`` when the connection is shared, so registry
        transactions never interleave with other writers on it; without one the registry runs its
        own ``BEGIN IMMEDIATE`` transactions (fine for a connection of its own, e.g. the CLI).
        ``market``: the market (or group) whose champion this registry keeps; None: the rows of the
        old single-champion schema (market '')."""
        self._conn = store_conn
        self._dir = Path(models_dir)
        self._clock = clock
        self._gate = write_gate
        self._market = market or ""
        self._lock = lock or asyncio.Lock()
        self._cached: tuple[str, BaselineModel] | None = None

    @property
    def models_dir(self) -> Path:
        return self._dir

    @property
    def market(self) -> str:
        """The market (or group) this registry is scoped to; '' when unscoped."""
        return self._market

    def for_market(self, market: str) -> ModelRegistry:
        """The same registry scoped to ``market``: its champion, candidates and rollbacks only."""
        if not market:
            raise RegistryError("for_market: need a market (or group) name")
        return ModelRegistry(self._conn, self._dir, self._clock, self._gate, market, lock=self._lock)

    async def markets(self) -> list[str]:
        """Markets (or groups) with at least one registered model, sorted ('' for old rows)."""
        async with self._conn.execute("SELECT DISTINCT market FROM models ORDER BY market") as cur:
            return [r[0] for r in await cur.fetchall()]

    def _now(self) -> str:
        now = self._clock.now() if self._clock is not None else dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        return now.astimezone(dt.UTC).isoformat(timespec="microseconds")

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One write transaction; nests as a savepoint if the connection already has one open."""
        if self._gate is not None:
            async with self._lock, self._gate.transaction():
                yield
            return
        async with self._lock:
            if self._conn.in_transaction:
                name = f"registry_{uuid.uuid4().hex[:8]}"
                await self._conn.execute(f"SAVEPOINT {name}")
                try:
                    yield
                except BaseException:
                    await self._conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    await self._conn.execute(f"RELEASE SAVEPOINT {name}")
                    raise
                await self._conn.execute(f"RELEASE SAVEPOINT {name}")
            else:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    await self._conn.rollback()
                    raise
                await self._conn.commit()

    async def _fetch(self, version: str) -> ModelRecord | None:
        async with self._conn.execute(f"SELECT {_COLUMNS} FROM models WHERE version = ?", (version,)) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def get(self, version: str) -> ModelRecord:
        """The record of ``version``; ``RegistryError`` if it is not registered."""
        rec = await self._fetch(version)
        if rec is None:
            raise RegistryError(f"model version {version!r} is not registered")
        return rec

    async def _champion_record(self) -> ModelRecord | None:
        async with self._conn.execute(f"SELECT {_COLUMNS} FROM models WHERE status = 'champion' AND market = ?",
                                      (self._market,)) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def _event(self, kind: str, version: str, previous: str | None, reason: str | None, at: str) -> None:
        await self._conn.execute(
            "INSERT INTO model_events (at, kind, version, previous, reason) VALUES (?, ?, ?, ?, ?)",
            (at, kind, version, previous, reason),
        )

    async def _load_verified(self, rec: ModelRecord) -> BaselineModel:
        try:
            model = await asyncio.to_thread(BaselineModel.load, self._dir / rec.path)
        except ModelError as exc:
            raise RegistryError(f"model {rec.version}: cannot load files: {exc}") from exc
        if model.content_hash() != rec.content_hash:
            raise RegistryError(
                f"model {rec.version}: files hash {model.content_hash()[:12]} != registered {rec.content_hash[:12]}"
            )
        return model

    async def load(self, version: str) -> BaselineModel:
        """Load any registered version from disk (verified against its registered hash)."""
        return await self._load_verified(await self.get(version))

    async def register(
        self,
        model: BaselineModel,
        metrics: Mapping[str, Any] | Any = None,
        parent: str | None = None,
        mutation: str | None = None,
        status: str = "candidate",
    ) -> str:
        """Store a fitted model and return its new version (``v0007-<hash8>``).

        ``metrics``: a JSON-able mapping or a ``WalkForwardResult`` (its ``summary()``).
        ``status``: "candidate" (default), "archived", "rejected" or "champion" (registers, then
        promotes in a second transaction).
        """
        if status not in STATUSES:
            raise RegistryError(f"register: status {status!r} is not one of {list(STATUSES)}")
        if not isinstance(model, BaselineModel) or not model.is_fitted:
            raise RegistryError("register: need a fitted BaselineModel")
        metrics_json = json.dumps(_metrics_dict(metrics), sort_keys=True, default=str)
        spec_json = json.dumps(model.spec.to_dict(), sort_keys=True, default=str)
        chash = model.content_hash()
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        final: Path | None = None
        try:
            await asyncio.to_thread(model.save, tmp)
            async with self._transaction():
                if parent is not None and await self._fetch(parent) is None:
                    raise RegistryError(f"register: parent {parent!r} is not registered")
                async with self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM models") as cur:
                    (seq,) = await cur.fetchone()
                version = f"v{seq:04d}-{chash[:8]}"
                final = self._dir / version
                if final.exists():  # left by a crash after the rename, before the commit
                    await asyncio.to_thread(shutil.rmtree, final)
                os.replace(tmp, final)
                _fsync_dir(self._dir)
                now = self._now()
                await self._conn.execute(
                    "INSERT INTO models (version, family, status, content_hash, path, parent, mutation, "
                    "spec_json, metrics_json, train_start, train_end, n_train, created_at, market) "
                    "VALUES (?, ?, 'candidate', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (version, model.spec.family, chash, version, parent, mutation, spec_json, metrics_json,
                     model.train_start, model.train_end, model.n_train, now, self._market),
                )
                if status in ("archived", "rejected"):
                    await self._conn.execute(
                        "UPDATE models SET status = ?, archived_at = ? WHERE version = ?", (status, now, version)
                    )
                await self._event("register", version, parent, mutation, now)
        except BaseException:
            for leftover in (tmp, final):
                if leftover is not None and leftover.exists():
                    shutil.rmtree(leftover, ignore_errors=True)
            raise
        log.info("registry.registered", version=version, family=model.spec.family, parent=parent, mutation=mutation,
                 market=self._market)
        if status == "champion":
            await self.promote(version, reason="registered as champion")
        return version

    async def promote(self, version: str, reason: str | None = None) -> None:
        """Make ``version`` the champion; the old champion is archived with ``superseded_by``.

        The files are loaded and verified first, so a broken model never becomes champion.
        A rejected model cannot be promoted; promoting the current champion does nothing.
        """
        rec = await self.get(version)
        if rec.status == "champion":
            log.info("registry.promote_noop", version=version)
            return
        if rec.status == "rejected":
            raise RegistryError(f"promote: {version} was rejected ({rec.status_reason}); register it again")
        if rec.market != self._market:
            raise RegistryError(f"promote: {version} belongs to market {rec.market or '(unassigned)'!r}, "
                                f"not {self._market or '(unassigned)'!r}")
        model = await self._load_verified(rec)
        async with self._transaction():
            now = self._now()
            current = await self.get(version)
            if current.status == "rejected":
                raise RegistryError(f"promote: {version} was rejected meanwhile ({current.status_reason})")
            old = await self._champion_record()
            old_version = old.version if old else None
            if old_version == version:  # promoted meanwhile by another process: nothing to do
                self._cached = (version, model)
                return
            if old is not None:
                await self._conn.execute(
                    "UPDATE models SET status = 'archived', archived_at = ?, superseded_by = ?, status_reason = ? "
                    "WHERE version = ?",
                    (now, version, f"superseded by {version}", old.version),
                )
            await self._conn.execute(
                "UPDATE models SET status = 'champion', promoted_at = ?, superseded_by = NULL, "
                "previous_champion = ?, status_reason = ? WHERE version = ?",
                (now, old_version, reason, version),
            )
            await self._event("promote", version, old_version, reason, now)
        self._cached = (version, model)
        log.info("registry.promoted", version=version, previous=old_version, reason=reason, market=self._market)

    async def rollback(self, reason: str | None = None) -> str:
        """Put the champion's predecessor back; returns the restored version.

        Repeated rollbacks walk further back along the promotions. The rolled-back model is
        archived with ``superseded_by`` = the restored version.
        """
        current = await self._champion_record()
        if current is None:
            raise RegistryError("rollback: there is no champion to roll back")
        if current.previous_champion is None:
            raise RegistryError(f"rollback: champion {current.version} has no previous champion")
        previous = await self.get(current.previous_champion)
        model = await self._load_verified(previous)
        async with self._transaction():
            now = self._now()
            still = await self._champion_record()
            if still is None or still.version != current.version:
                raise RegistryError(
                    f"rollback: champion changed during rollback ({current.version} -> "
                    f"{still.version if still else None}); try again"
                )
            text = f"rolled back: {reason}" if reason else "rolled back"
            await self._conn.execute(
                "UPDATE models SET status = 'archived', archived_at = ?, superseded_by = ?, status_reason = ? "
                "WHERE version = ?",
                (now, previous.version, text, current.version),
            )
            await self._conn.execute(
                "UPDATE models SET status = 'champion', promoted_at = ?, superseded_by = NULL, archived_at = NULL, "
                "status_reason = ? WHERE version = ?",
                (now, f"restored by rollback of {current.version}", previous.version),
            )
            await self._event("rollback", previous.version, current.version, reason, now)
        self._cached = (previous.version, model)
        log.warning("registry.rolled_back", restored=previous.version, rolled_back=current.version, reason=reason,
                    market=self._market)
        return previous.version

    async def _set_status(self, version: str, status: str, kind: str, reason: str | None) -> None:
        rec = await self.get(version)
        if rec.status == "champion":
            raise RegistryError(f"{kind}: {version} is the champion; promote another model or roll back first")
        async with self._transaction():
            now = self._now()
            await self._conn.execute(
                "UPDATE models SET status = ?, archived_at = ?, status_reason = ? WHERE version = ?",
                (status, now, reason, version),
            )
            await self._event(kind, version, None, reason, now)
        log.info(f"registry.{kind}", version=version, reason=reason)

    async def reject(self, version: str, reason: str) -> None:
        """Mark a candidate as rejected (it failed the promotion gate)."""
        await self._set_status(version, "rejected", "reject", reason)

    async def archive(self, version: str, reason: str | None = None) -> None:
        """Retire a candidate without judging it."""
        await self._set_status(version, "archived", "archive", reason)

    async def champion_version(self) -> str | None:
        async with self._conn.execute("SELECT version FROM models WHERE status = 'champion' AND market = ?",
                                      (self._market,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def champion_record(self) -> ModelRecord | None:
        return await self._champion_record()

    async def champion(self) -> BaselineModel | None:
        """The current champion model (cached; reloaded from disk when the champion changes)."""
        entry = await self.champion_entry()
        return None if entry is None else entry[1]

    async def champion_entry(self) -> tuple[str, BaselineModel] | None:
        """``(version, model)`` of the current champion, read consistently in one lookup."""
        rec = await self._champion_record()
        if rec is None:
            self._cached = None
            return None
        cached = self._cached
        if cached is not None and cached[0] == rec.version:
            return cached
        model = await self._load_verified(rec)
        self._cached = (rec.version, model)
        log.info("registry.champion_loaded", version=rec.version)
        return self._cached

    async def candidates(self) -> list[ModelRecord]:
        return await self.history(status="candidate")

    async def history(self, status: str | None = None, limit: int | None = None) -> list[ModelRecord]:
        """This market's registered models, newest first, optionally only those with ``status``."""
        if status is not None and status not in STATUSES:
            raise RegistryError(f"history: status {status!r} is not one of {list(STATUSES)}")
        sql = f"SELECT {_COLUMNS} FROM models WHERE market = ?"
        args: list[Any] = [self._market]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        async with self._conn.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [_record(r) for r in rows]

    async def events(self, version: str | None = None) -> list[ModelEvent]:
        """The audit trail, oldest first (register, promote, rollback, reject, archive)."""
        sql = "SELECT id, at, kind, version, previous, reason FROM model_events"
        args: tuple[Any, ...] = ()
        if version is not None:
            sql += " WHERE version = ? OR previous = ?"
            args = (version, version)
        async with self._conn.execute(sql + " ORDER BY id", args) as cur:
            rows = await cur.fetchall()
        return [ModelEvent(*r) for r in rows]

    async def lineage(self, version: str) -> list[ModelRecord]:
        """``version`` and its ancestors through ``parent``, newest first."""
        chain: list[ModelRecord] = []
        seen: set[str] = set()
        current: str | None = version
        while current is not None:
            if current in seen:
                raise RegistryError(f"lineage: cycle at {current}")
            seen.add(current)
            rec = await self.get(current)
            chain.append(rec)
            current = rec.parent
        return chain

    async def prune_files(self, *, keep: int, older_than: dt.datetime) -> list[tuple[str, int]]:
        """Delete the files of this market's old versions; the rows stay (history, lineage, journal).

        Never touched: the champion, its predecessor (what a rollback restores), any candidate
        (one may await approval), the newest ``keep`` versions, and versions retired (or, never
        retired, registered) at or after ``older_than``. Only archived and rejected versions qualify.
        Returns ``(version, bytes freed)`` for each version whose files were deleted now.
        """
        if keep < 0:
            raise RegistryError(f"prune_files: keep = {keep} must be 0 or more")
        cutoff = older_than if older_than.tzinfo else older_than.replace(tzinfo=dt.UTC)
        out: list[tuple[str, int]] = []
        async with self._lock:
            records = await self.history()  # newest first
            champion = next((r for r in records if r.status == "champion"), None)
            protected = {r.version for r in records[:keep]}
            if champion is not None:
                protected.add(champion.version)
                if champion.previous_champion:
                    protected.add(champion.previous_champion)
            for rec in records:
                if rec.version in protected or rec.status not in ("archived", "rejected"):
                    continue
                stamp = rec.archived_at or rec.created_at
                try:
                    retired = dt.datetime.fromisoformat(stamp)
                except (TypeError, ValueError):
                    continue
                if (retired if retired.tzinfo else retired.replace(tzinfo=dt.UTC)) >= cutoff:
                    continue
                path = self._dir / rec.path
                if not path.is_dir():
                    continue  # pruned before
                freed = await asyncio.to_thread(_remove_tree, path)
                out.append((rec.version, freed))
        if out:
            log.info("registry.files_pruned", market=self._market, versions=[v for v, _ in out],
                     bytes_freed=sum(b for _, b in out))
        return out

    async def orphan_dirs(self) -> list[Path]:
        """Directories under ``models_dir`` with no row (crash leftovers); safe to delete offline."""
        if not self._dir.is_dir():
            return []
        async with self._conn.execute("SELECT path FROM models") as cur:
            known = {r[0] for r in await cur.fetchall()}
        return sorted(p for p in self._dir.iterdir() if p.is_dir() and p.name not in known)
