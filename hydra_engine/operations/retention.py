"""Retention of files that grow for as long as HYDRA runs: experiment folders, rotated logs, store
backups and crash leftovers in the model registry (the registry prunes its own versions' files).

One rule everywhere: the newest ``keep`` are kept whatever their age; of the rest, those older than
``max_age`` are deleted. Folders in use (a running experiment's) are never deleted. These are plain
blocking functions on paths; the caller runs them in a thread and journals the ``Pruned`` results.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

DAY_S = 86_400.0
ORPHAN_MIN_AGE_S = DAY_S
"""A model folder without a row may be a registration in flight: only one this old is a leftover."""


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one retention step deleted."""

    what: str
    """``experiments``, ``logs``, ``backups``, ``model_orphans`` or ``models``."""
    paths: tuple[str, ...] = ()
    bytes_freed: int = 0
    errors: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.paths)


def select_old(items: Sequence[tuple[Path, float]], *, keep: int, max_age_s: float, now: float) -> list[Path]:
    """Of ``(path, mtime)`` pairs, those beyond the newest ``keep`` and older than ``max_age_s``."""
    newest_first = sorted(items, key=lambda it: (it[1], it[0].name), reverse=True)
    return [p for p, mtime in newest_first[keep:] if now - mtime > max_age_s]


def size_of(path: Path) -> int:
    """Bytes held by a file or a folder's files (0 when it vanished meanwhile)."""
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        return path.stat().st_size
    except OSError:
        return 0


def _newest_mtime(path: Path) -> float:
    """A folder's age is its newest file's: a folder written to yesterday is not old."""
    try:
        newest = path.stat().st_mtime
        if path.is_dir():
            for p in path.rglob("*"):
                try:
                    newest = max(newest, p.stat().st_mtime)
                except OSError:
                    continue
        return newest
    except OSError:
        return 0.0


def delete(what: str, paths: Sequence[Path]) -> Pruned:
    """Delete ``paths`` (files or folders), measuring what was freed; errors are collected, not raised."""
    done: list[str] = []
    errors: list[str] = []
    freed = 0
    for p in paths:
        size = size_of(p)
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(f"{p}: {exc.strerror or exc}")
            continue
        done.append(str(p))
        freed += size
    return Pruned(what, tuple(done), freed, tuple(errors))


def prune_experiments(root: Path, *, keep: int, max_age_days: float, now: float,
                      in_use: Collection[Path] = ()) -> Pruned:
    """Old experiment folders: ``root/<market>/<agent cycle>/`` (inputs, each experiment's job,
    result, log and model files). ``in_use`` folders (a running experiment's cycle) stay."""
    busy = {Path(p).resolve() for p in in_use}
    chosen: list[Path] = []
    if root.is_dir():
        for market in sorted(p for p in root.iterdir() if p.is_dir()):
            cycles = [(c, _newest_mtime(c)) for c in market.iterdir() if c.is_dir()]
            for c in select_old(cycles, keep=keep, max_age_s=max_age_days * DAY_S, now=now):
                if c.resolve() not in busy:
                    chosen.append(c)
    return delete("experiments", chosen)


def prune_rotated_logs(log_file: Path, *, keep: int, max_age_days: float, now: float) -> Pruned:
    """Rotated copies of ``log_file`` (``hydra.log.1``, ``hydra.log.2``...); the live file stays."""
    chosen: list[Path] = []
    if log_file.parent.is_dir():
        rotated = [(p, p.stat().st_mtime) for p in log_file.parent.glob(f"{log_file.name}.*")
                   if p.is_file() and p.name != log_file.name]
        chosen = select_old(rotated, keep=keep, max_age_s=max_age_days * DAY_S, now=now)
    return delete("logs", chosen)


def prune_backups(backups: Sequence[Path], *, keep: int, max_age_days: float, now: float) -> Pruned:
    """Store backups (``hydra.db.bak-v*``, listed by ``store.database.list_backups``)."""
    items = []
    for p in backups:
        try:
            items.append((p, p.stat().st_mtime))
        except OSError:
            continue
    return delete("backups", select_old(items, keep=max(1, keep), max_age_s=max_age_days * DAY_S, now=now))


def prune_model_orphans(orphans: Sequence[Path], *, now: float, min_age_s: float = ORPHAN_MIN_AGE_S) -> Pruned:
    """Model folders with no registry row (``ModelRegistry.orphan_dirs``): a crash's leftovers once old."""
    return delete("model_orphans", [p for p in orphans if now - _newest_mtime(p) > min_age_s])
