"""Shared fixtures for the agent tests: a real SQLite store with the registry and agent schema."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import AsyncIterator

import aiosqlite
import numpy as np
import pandas as pd
import pytest

from hydra_engine.store.migrations import v003_models, v004_agent, v006_market_champions


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    db = await aiosqlite.connect(tmp_path / "store.db")
    async with db.execute("PRAGMA journal_mode=WAL"):  # closed: an open statement would lock v006's DROP INDEX
        pass
    await db.executescript(v003_models.SQL + v004_agent.SQL + v006_market_champions.SQL)
    await db.commit()
    yield db
    await db.close()


def synthetic_bars(n: int, seed: int = 0, start: str = "2015-01-01", coef: float = 0.3, flip_at: int | None = None) -> pd.DataFrame:
    """Daily bars whose next-day return depends on the last 5 days (sign flips at ``flip_at``)."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n)
    for t in range(n):
        c = coef if flip_at is None or t < flip_at else -coef
        f = r[max(0, t - 5):t].sum() / np.sqrt(5) if t else 0.0
        r[t] = c * f + 0.01 * np.sqrt(1 - c * c) * rng.standard_normal()
    close = 50 * np.exp(np.cumsum(r))
    idx = pd.bdate_range(start, periods=n)
    spread = close * 0.005
    return pd.DataFrame(
        {"open": close, "high": close + spread, "low": close - spread, "close": close, "volume": rng.integers(800, 1200, n)},
        index=idx,
    )


def day(ts: pd.Timestamp) -> dt.date:
    return pd.Timestamp(ts).date()
