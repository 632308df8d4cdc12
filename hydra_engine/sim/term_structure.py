"""Term structure: how each contract month is priced from the spot series.

    F(t, T) = S(t) * exp(carry(t) * tau(t, T)),   tau = (last trade date of T - t) / 365 days

``carry`` is a slowly mean-reverting slope per product (log price per year): positive is
contango (deferred months dearer, rolling a long costs money), negative is backwardation. It
wanders between the two over months, so roll costs change sign over the years.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from hydra_engine.sim.catalog import MarketProfile
from hydra_engine.sim.scenarios import stream_seed

_HALF_LIFE_DAYS = 120.0


def carry_series(profile: MarketProfile, n_days: int, seed: int, symbol: str) -> np.ndarray:
    """Daily carry slope (per year) as an Ornstein-Uhlenbeck path around the profile's mean."""
    rng = np.random.default_rng(stream_seed(seed, symbol, "carry"))
    kappa = math.log(2.0) / _HALF_LIFE_DAYS
    step_sd = profile.carry_sd_per_year * math.sqrt(1.0 - math.exp(-2.0 * kappa))
    e = rng.standard_normal(n_days)
    out = np.empty(n_days, dtype=np.float64)
    x = profile.carry_mean_per_year + profile.carry_sd_per_year * e[0]
    decay = math.exp(-kappa)
    for i in range(n_days):
        if i:
            x = profile.carry_mean_per_year + (x - profile.carry_mean_per_year) * decay + step_sd * e[i]
        out[i] = x
    return out


def month_factor(carry: np.ndarray, day_ordinals: np.ndarray, last_trade: dt.date) -> np.ndarray:
    """exp(carry * tau) for each day; tau is floored at zero after the last trade date."""
    tau = np.maximum(last_trade.toordinal() - day_ordinals, 0).astype(np.float64) / 365.0
    return np.exp(carry * tau)


def round_to_tick(values: np.ndarray | float, tick: float) -> np.ndarray | float:
    """Nearest multiple of ``tick`` (kept as clean decimals: 0.1+0.2 style noise removed)."""
    decimals = max(0, -int(math.floor(math.log10(tick))) + 2)
    return np.round(np.round(np.asarray(values) / tick) * tick, decimals)


def tick_round(value: float, tick: float, mode: str = "nearest") -> float:
    """One price on the tick grid: ``nearest``, ``up`` or ``down``."""
    q = value / tick
    if mode == "up":
        n = math.ceil(q - 1e-9)
    elif mode == "down":
        n = math.floor(q + 1e-9)
    else:
        n = round(q)
    decimals = max(0, -int(math.floor(math.log10(tick))) + 2)
    return round(n * tick, decimals)
