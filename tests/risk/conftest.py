"""Fixtures: a real SQLite file with the v001 (when present) and v002 schemas, on aiosqlite."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import aiosqlite
import pytest

from risk_db import open_db


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "risk.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(db_path)
    yield conn
    await conn.close()
