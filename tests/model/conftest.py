"""Shared synthetic data for the model tests: small daily bars with a planted momentum edge."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import aiosqlite
import numpy as np
import pandas as pd
import pytest


def synthetic_bars(n: int = 400, seed: int = 7, edge: float = 0.0, start: str = "2020-01-01") -> pd.DataFrame:
    """Business-day bars; with ``edge`` > 0 tomorrow's return leans toward the sign of the 5-day return."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n)
    close = np.empty(n)
    close[0] = 100.0
    rets = np.zeros(n)
    for t in range(1, n):
        mom = np.sign(close[t - 1] - close[t - 6]) if t > 6 else 0.0
        rets[t] = 0.01 * (edge * mom + rng.standard_normal())
        close[t] = close[t - 1] * (1.0 + rets[t])
    spread = np.abs(rng.normal(0.01, 0.003, n)) * close
    open_ = close * (1.0 + rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) + spread / 2
    low = np.minimum(open_, close) - spread / 2
    volume = rng.integers(1_000, 5_000, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=dates
    ).rename_axis("date")


@pytest.fixture
def bars() -> pd.DataFrame:
    return synthetic_bars()


def migration_sql() -> str:
    return importlib.import_module("hydra_engine.store.migrations.v003_models").SQL


@pytest.fixture
async def conn(tmp_path: Path):
    """A real SQLite file with the v003 schema applied, as the store would."""
    db = await aiosqlite.connect(tmp_path / "store.db")
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA foreign_keys=ON")
    await db.executescript(migration_sql())
    await db.commit()
    try:
        yield db
    finally:
        await db.close()
