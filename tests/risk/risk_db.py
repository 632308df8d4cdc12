"""Open a real SQLite file with the v001 (when present) and v002 schemas, on aiosqlite."""

from __future__ import annotations

import importlib
from pathlib import Path

import aiosqlite


async def open_db(path: Path, *, migrate: bool = True) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path)
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    if not migrate:
        return conn
    for name in ("v001_core", "v002_fills"):
        try:
            mod = importlib.import_module(f"hydra_engine.store.migrations.{name}")
        except ModuleNotFoundError:
            continue
        await conn.executescript(mod.SQL)
    await conn.commit()
    return conn
