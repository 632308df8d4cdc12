"""A stale store lock: the previous engine on this store never released it.

The store's lock is an OS ``flock`` (``store/lock.py``), so a dead holder never blocks a new
start; but the holder writes its PID into the file and empties it on a clean release. A lock file
that still names a PID while nobody holds the lock therefore means the last engine was killed or
crashed: worth telling the operator, since the restart had to recover (interrupted cycles, orders
rebound, experiments abandoned). Read before the store is opened, because opening rewrites it.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class StaleLock:
    path: Path
    pid: int | None
    """The PID the dead holder wrote (None when the file held something else)."""


def find_stale_lock(path: Path) -> StaleLock | None:
    """The stale lock at ``path``, or None (no file, an empty file, or a live holder)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if not text:
        return None
    if _held(path):
        return None  # someone holds it: opening the store will refuse, naming them
    first = text.split()[0]
    return StaleLock(path, int(first) if first.isdigit() else None)


def _held(path: Path) -> bool:
    """True when another open file holds the ``flock`` (a shared probe, released at once)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
