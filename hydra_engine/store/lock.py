"""Locks around a store: one engine per store (an OS file lock) and one writer at a time.

``StoreLock`` holds ``fcntl.flock`` on ``hydra.lock`` for the Store's life. flock locks belong to
the open file, so a second open in the same process is refused just like one from another process,
and the OS drops the lock when the holder dies: a crashed engine never leaves a stale lock. The
holder's PID is written into the file so the refusal can name it.

``WriteGate`` serialises multi-statement writes on the shared aiosqlite connection. It uses a
SAVEPOINT, so a failed block rolls back only its own statements, never another writer's pending
work on the same connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import AsyncIterator

import aiosqlite
import structlog

log = structlog.get_logger(__name__)


class LockHeldError(Exception):
    """Another holder has the lock; ``pid`` is the PID written in the lock file (None if unknown)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"{path} is held by {who}")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


class StoreLock:
    """An exclusive, non-blocking ``flock`` on a lock file, released by ``release()`` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> "StoreLock":
        """Take the lock or raise ``LockHeldError`` naming the holder's PID."""
        path = Path(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeldError(path, _read_pid(path)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        os.fsync(fd)
        return cls(path, fd)

    @staticmethod
    def holder_pid(path: Path) -> int | None:
        """PID of the current holder, or None when nobody holds the lock."""
        path = Path(path)
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_pid(path)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class WriteGate:
    """One writer at a time on a shared connection; ``transaction()`` commits or rolls back a block."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``async with gate.transaction() as conn:`` all statements inside commit together."""
        async with self._lock:
            await self._conn.execute("SAVEPOINT hydra_tx")
            try:
                yield self._conn
            except BaseException:
                try:
                    await self._conn.execute("ROLLBACK TO hydra_tx")
                    await self._conn.execute("RELEASE hydra_tx")
                except sqlite3.OperationalError as exc:  # a writer outside the gate committed meanwhile
                    log.error("write_gate_rollback_impossible", error=str(exc))
                raise
            try:
                await self._conn.execute("RELEASE hydra_tx")
            except sqlite3.OperationalError as exc:
                if "no such savepoint" not in str(exc):
                    raise
                # A writer outside the gate committed while our block ran: our statements are
                # already durable, but they were not atomic with each other. Writers should use the gate.
                log.warning("write_gate_foreign_commit", error=str(exc))
            await self._conn.commit()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection with no gated writer active and no transaction opened: for statements that
        refuse to run inside one (``VACUUM``, ``PRAGMA wal_checkpoint``). Other writers wait meanwhile."""
        async with self._lock:
            yield self._conn
