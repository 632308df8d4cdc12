"""Daily housekeeping after the last decision: retention, then a VACUUM every few days while idle.

The trigger is the engine's own events, not a timer: when the last market due on a trading date
has finished its cycle (FINISHED, SKIPPED or FAILED, as the store records it), retention runs for
that date, once (the date is kept in the store, so a restart does not run it again). That is the
same in real time, broker time and lock-step simulation. Each run that deletes something is one
RETENTION entry in the ops journal; a VACUUM is another, with the file sizes before and after.

``VACUUM`` cannot run inside a transaction: it runs under the store's write gate held exclusively
(no gated writer mid-transaction, the others wait), on a connection of its own (readers on the
store's connection keep their snapshot), and only once no cycle is running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from hydra_engine.events import CycleFinished, EngineEvent
from hydra_engine.markets import MarketConfig, is_trading_day
from hydra_engine.operations.retention import (
    Pruned,
    prune_backups,
    prune_experiments,
    prune_model_orphans,
    prune_rotated_logs,
)
from hydra_engine.operations.settings import RetentionSettings
from hydra_engine.store.cycles import CycleStatus
from hydra_engine.store.database import list_backups
from hydra_engine.store.ops_journal import OpsKind
from hydra_engine.tasks import log_task_failure

log = structlog.get_logger(__name__)

LAST_RUN_KEY = "operations.retention_last_date"
LAST_VACUUM_KEY = "operations.vacuum_last_date"
IDLE_WAIT_S = 600.0
"""How long (wall seconds) a VACUUM waits for the running cycle to finish before it is postponed."""
JOURNAL_PATHS = 50
"""At most this many deleted paths are listed per step in the journal entry (the count is exact)."""


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """One housekeeping run."""

    trading_date: dt.date
    steps: tuple[Pruned, ...] = ()
    vacuum: dict[str, Any] | None = field(default=None)

    @property
    def deleted(self) -> int:
        return sum(s.count for s in self.steps)

    @property
    def bytes_freed(self) -> int:
        return sum(s.bytes_freed for s in self.steps)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _vacuum_file(path: Path) -> None:
    """VACUUM on a connection of its own: SQLite refuses it on a connection with any statement in
    progress, and the store's shared connection always may have a reader mid-query (a pane's
    refresh, a command's report). In WAL mode such readers keep their snapshot meanwhile."""
    import sqlite3

    con = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        con.execute("VACUUM")
        # Give the WAL (which now holds the whole copy) back to the disk when no reader needs it;
        # a reader mid-query makes TRUNCATE wait for it, so wait briefly and leave the rest to
        # SQLite's automatic checkpoints.
        con.execute("PRAGMA busy_timeout = 1000")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        con.close()


def _db_bytes(path: Path) -> int:
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return total


class Maintenance:
    """Runs retention once per trading date after its last cycle, and VACUUM every few dates."""

    def __init__(self, store: Any, registry: Any, settings: RetentionSettings, markets: Sequence[MarketConfig], *,
                 log_file: Path | None, idle: Callable[[], bool], clock: Any, idle_wait_s: float = IDLE_WAIT_S) -> None:
        self._store = store
        self._registry = registry
        self.settings = settings
        self.markets = tuple(markets)
        self.log_file = log_file
        self._idle = idle
        self._clock = clock
        self.idle_wait_s = idle_wait_s
        self._lock = asyncio.Lock()
        self._wanted: dt.date | None = None
        """The newest trading date a finished cycle asked about and no run has looked at yet."""
        self._worker: asyncio.Task[None] | None = None
        self.reports: list[RetentionReport] = []
        """This process's runs, newest last (at most one a trading date; trimmed to the last 30)."""

    # ----------------------------------------------------------------- trigger

    def on_event(self, event: EngineEvent) -> None:
        """Hook for the event router: a finished cycle may complete its trading date.

        One worker looks at the newest date asked about; events that arrive while it runs are
        folded into the next look. Lock-step plays days faster than a run (a VACUUM waits for an
        idle moment), and a task per event piled up without bound; a date skipped that way only
        means its housekeeping is done by a later date's run."""
        if not (isinstance(event, CycleFinished) and self.settings.enabled):
            return
        if self._wanted is None or event.trading_date > self._wanted:
            self._wanted = event.trading_date
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="retention")
            self._worker.add_done_callback(log_task_failure)

    async def _work(self) -> None:
        while self._wanted is not None:
            day, self._wanted = self._wanted, None
            try:
                await self.after_cycle(day)
            except Exception:  # noqa: BLE001 - logged; the next date's run tries again
                log.exception("retention.failed", trading_date=str(day))

    async def date_complete(self, day: dt.date) -> bool:
        """True when every market due on ``day`` has a finished cycle row (any outcome)."""
        due = [m for m in self.markets if is_trading_day(m, day)]
        for m in due:
            rec = await self._store.cycles.get(m.symbol, day)
            if rec is None or rec.status == CycleStatus.RUNNING:
                return False
        return bool(due)

    async def after_cycle(self, day: dt.date) -> RetentionReport | None:
        """Run retention for ``day`` if its last cycle just finished and it has not run for it yet."""
        async with self._lock:
            if not await self.date_complete(day):
                return None
            last = await self._store.kv.get_raw(LAST_RUN_KEY)
            if isinstance(last, str) and last >= day.isoformat():
                return None
            return await self._run(day)

    async def run(self, day: dt.date) -> RetentionReport:
        """Retention (and a VACUUM when due) now, for ``day``, whatever ran before."""
        async with self._lock:
            return await self._run(day)

    # ----------------------------------------------------------------- the run

    async def _run(self, day: dt.date) -> RetentionReport:
        s = self.settings
        now_wall = time.time()
        steps: list[Pruned] = [await self._prune_models()]
        orphans = await self._registry.orphan_dirs()
        steps.append(await asyncio.to_thread(prune_model_orphans, orphans, now=now_wall))
        steps.append(await asyncio.to_thread(prune_experiments, self._store.directory / "experiments",
                                             keep=s.experiments_keep, max_age_days=s.experiments_max_age_days,
                                             now=now_wall, in_use=await self._running_experiment_dirs()))
        if self.log_file is not None:
            steps.append(await asyncio.to_thread(prune_rotated_logs, self.log_file, keep=s.logs_keep,
                                                 max_age_days=s.logs_max_age_days, now=now_wall))
        steps.append(await asyncio.to_thread(prune_backups, list_backups(self._store.path), keep=s.backups_keep,
                                             max_age_days=s.backups_max_age_days, now=now_wall))
        report = RetentionReport(day, tuple(steps))
        await self._journal(report)
        await self._store.kv.set_raw(LAST_RUN_KEY, day.isoformat())
        vacuum = await self._vacuum_if_due(day)
        if vacuum is not None:
            report = RetentionReport(day, report.steps, vacuum)
        self.reports = [*self.reports[-29:], report]
        return report

    async def _prune_models(self) -> Pruned:
        s = self.settings
        older_than = self._clock.now() - dt.timedelta(days=s.models_max_age_days)
        versions: list[str] = []
        freed = 0
        errors: list[str] = []
        for key in await self._registry.markets():
            scope = self._registry if key == "" else self._registry.for_market(key)
            try:
                for version, size in await scope.prune_files(keep=s.models_keep, older_than=older_than):
                    versions.append(version)
                    freed += size
            except OSError as exc:
                errors.append(f"{key or '(unassigned)'}: {exc}")
        return Pruned("models", tuple(versions), freed, tuple(errors))

    async def _running_experiment_dirs(self) -> list[Path]:
        """The agent-cycle folders of experiments the journal says are running (never deleted)."""
        async with self._store.conn.execute(
                "SELECT log_path FROM agent_experiments WHERE status = 'RUNNING' AND log_path IS NOT NULL") as cur:
            rows = await cur.fetchall()
        return [Path(r[0]).parent.parent for r in rows if r[0]]

    async def _journal(self, report: RetentionReport) -> None:
        detail = {s.what: {"deleted": s.count, "bytes_freed": s.bytes_freed, "paths": list(s.paths[:JOURNAL_PATHS]),
                           "errors": list(s.errors)} for s in report.steps}
        log.info("retention.ran", trading_date=str(report.trading_date), deleted=report.deleted,
                 bytes_freed=report.bytes_freed, **{s.what: s.count for s in report.steps})
        if report.deleted == 0 and not any(s.errors for s in report.steps):
            return  # nothing happened: the log line is enough
        parts = ", ".join(f"{s.count} {s.what}" for s in report.steps if s.count)
        errors = sum(len(s.errors) for s in report.steps)
        message = (f"retention after {report.trading_date}: deleted {parts or 'nothing'} "
                   f"({_mb(report.bytes_freed)} freed)" + (f"; {errors} could not be deleted" if errors else ""))
        await self._store.ops.record(OpsKind.RETENTION, message, command="retention", actor="maintenance",
                                     detail={"trading_date": report.trading_date.isoformat(), **detail})

    # ----------------------------------------------------------------- vacuum

    async def _vacuum_if_due(self, day: dt.date) -> dict[str, Any] | None:
        every = self.settings.vacuum_every_days
        if every <= 0:
            return None
        last = await self._store.kv.get_raw(LAST_VACUUM_KEY)
        if not isinstance(last, str):  # the first run starts the count; a new store has nothing to reclaim
            await self._store.kv.set_raw(LAST_VACUUM_KEY, day.isoformat())
            return None
        if (day - dt.date.fromisoformat(last)).days < every:
            return None
        return await self.vacuum(day)

    async def vacuum(self, day: dt.date) -> dict[str, Any] | None:
        """VACUUM the store once no cycle runs (waits up to ``idle_wait_s``); None when postponed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.idle_wait_s
        while not self._idle():
            if loop.time() >= deadline:
                log.warning("retention.vacuum_postponed", reason="a cycle kept running", waited_s=self.idle_wait_s)
                return None
            await asyncio.sleep(0.5)
        path: Path = self._store.path
        before = await asyncio.to_thread(_db_bytes, path)
        started = time.perf_counter()
        async with self._store.tx.exclusive() as conn:
            if conn.in_transaction:
                log.warning("retention.vacuum_skipped", reason="a transaction is open on the store's connection")
                return None
            await asyncio.to_thread(_vacuum_file, path)
        seconds = time.perf_counter() - started
        after = await asyncio.to_thread(_db_bytes, path)
        result = {"bytes_before": before, "bytes_after": after, "seconds": round(seconds, 3), "trading_date": day.isoformat()}
        await self._store.kv.set_raw(LAST_VACUUM_KEY, day.isoformat())
        await self._store.ops.record(OpsKind.RETENTION, f"store vacuumed: {_mb(before)} -> {_mb(after)} in {seconds:.2f} s",
                                     command="vacuum", actor="maintenance", detail=result)
        log.info("retention.vacuumed", **result)
        return result

    async def stop(self) -> None:
        self._wanted = None
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
