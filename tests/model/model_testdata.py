"""Synthetic data for the model tests (a plain module, so test files can import it by a unique name)."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd


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


def migration_sql() -> str:
    return importlib.import_module("hydra_engine.store.migrations.v003_models").SQL


def registry_schema_sql() -> str:
    """The registry's tables as the store has them now (v003, then v006's market column)."""
    return "".join(importlib.import_module(f"hydra_engine.store.migrations.{m}").SQL
                   for m in ("v003_models", "v004_agent", "v006_market_champions"))
