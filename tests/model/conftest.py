"""Fixtures for the model tests: synthetic bars and a real SQLite file with the v003 schema."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pandas as pd
import pytest
from model_testdata import registry_schema_sql, synthetic_bars


@pytest.fixture
def bars() -> pd.DataFrame:
    return synthetic_bars()


@pytest.fixture
async def conn(tmp_path: Path):
    """A real SQLite file with the v003 schema applied, as the store would."""
    db = await aiosqlite.connect(tmp_path / "store.db")
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA foreign_keys=ON")
    await db.executescript(registry_schema_sql())
    await db.commit()
    try:
        yield db
    finally:
        await db.close()
