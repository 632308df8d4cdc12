"""Open a real SQLite file with every migration applied, on aiosqlite."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from hydra_engine.store.database import open_migrated


async def open_db(path: Path, *, migrate: bool = True) -> aiosqlite.Connection:
    return await open_migrated(path, migrate=migrate)
