"""Synthetic thin markets with named scenarios and their ground truth.

Each scenario is a sequence of regimes separated by known change dates. Within a regime the
spot log-return on trade date t is

    r_t = drift + coefficient * f_t + vol * sqrt(1 - coefficient**2) * e_t,   e_t ~ N(0, 1)
    f_t = (r_{t-1} + ... + r_{t-L}) / sqrt(L)                                   (L = lookback_days)

(plus a very weak pull towards the product's base price so decades of history stay plausible).
``f_t`` is the planted, learnable feature: with ``coefficient > 0`` the market trends
(momentum), with ``< 0`` it mean-reverts. Volume and spreads scale by the regime's
``volume_factor`` and ``spread_factor``. ``ScenarioInfo`` is the ground truth the agent's tests
compare against; the exchange never tells the engine any of it.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from hydra_engine.sim.calendar import is_business_day, next_business_day
from hydra_engine.sim.catalog import MarketProfile

DEFAULT_LOOKBACK_DAYS = 5
DEFAULT_CHANGE_OFFSETS_DAYS = (125, 250)
"""Business days after the scenario anchor (the default clock start) of the 1st and 2nd change."""
DEMO_CHANGE_OFFSET_DAYS = 50
"""The default demo's break: 50 business days into a default run, so ``replay --days 252`` holds
the change, the detection and about 200 trading days for the agent to gather evidence and heal."""
_PULL_PER_DAY = 0.003
_VOLUME_NOISE_SD = 0.35


@dataclass(frozen=True, slots=True)
class Regime:
    """Parameters in force from ``start`` (a trade date) until the next regime."""

    start: dt.date
    drift_per_day: float
    """Mean daily log return."""
    vol_per_day: float
    """Daily log-return standard deviation."""
    coefficient: float
    """Planted coefficient of next-day return on the feature f (see module doc)."""
    volume_factor: float = 1.0
    """Multiplies the product's average daily volume."""
    spread_factor: float = 1.0
    """Multiplies the product's typical spread (liquidity)."""


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    """Ground truth of one market: what changes, when, and the planted relation."""

    symbol: str
    name: str
    description: str
    seed: int
    lookback_days: int
    """L in the feature f_t = sum of the last L daily log returns / sqrt(L)."""
    regimes: tuple[Regime, ...]
    synthetic: bool = True
    """False for real or user history (no planted relation; regimes describe nothing)."""

    @property
    def change_dates(self) -> tuple[dt.date, ...]:
        """Trade dates on which a new regime starts."""
        return tuple(r.start for r in self.regimes[1:])

    @property
    def before(self) -> Regime:
        return self.regimes[0]

    @property
    def after(self) -> Regime:
        return self.regimes[-1]

    @property
    def coefficient_before(self) -> float:
        return self.regimes[0].coefficient

    @property
    def coefficient_after(self) -> float:
        return self.regimes[-1].coefficient

    def regime_at(self, day: dt.date) -> Regime:
        """The regime in force on trade date ``day``."""
        current = self.regimes[0]
        for r in self.regimes[1:]:
            if day >= r.start:
                current = r
        return current


@dataclass(frozen=True, slots=True)
class ScenarioChoice:
    """A caller's pick: a registered scenario name, optional change dates and parameter overrides.

    ``overrides`` maps a regime field (``drift_per_day``, ``vol_per_day``, ``coefficient``,
    ``volume_factor``, ``spread_factor``) to a tuple with one value per regime.
    """

    name: str
    change_dates: tuple[dt.date, ...] | None = None
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    overrides: Mapping[str, tuple[float, ...]] | None = None


# A template turns a profile into per-regime parameter dicts (without start dates).
_Template = Callable[[MarketProfile], list[dict[str, float]]]


def _p(p: MarketProfile, **kw: float) -> dict[str, float]:
    base = {"drift_per_day": 0.0, "vol_per_day": p.daily_vol, "coefficient": 0.0,
            "volume_factor": 1.0, "spread_factor": 1.0}
    base.update(kw)
    return base


SCENARIOS: dict[str, tuple[str, _Template]] = {
    "steady": ("No change: a driftless market with no planted relation (control).",
               lambda p: [_p(p)]),
    "drift_shift": ("Drift turns from +0.08 to -0.08 daily standard deviations.",
                    lambda p: [_p(p, drift_per_day=0.08 * p.daily_vol),
                               _p(p, drift_per_day=-0.08 * p.daily_vol)]),
    "vol_doubling": ("Volatility doubles.",
                     lambda p: [_p(p), _p(p, vol_per_day=2 * p.daily_vol)]),
    "volume_dry_up": ("Volume falls to a fifth and spreads widen 2.5x.",
                      lambda p: [_p(p), _p(p, volume_factor=0.2, spread_factor=2.5)]),
    "momentum_flip": ("Planted momentum (+0.25) flips to mean reversion (-0.25).",
                      lambda p: [_p(p, coefficient=0.25), _p(p, coefficient=-0.25)]),
    "momentum_fade": ("Planted momentum (+0.25) fades to nothing.",
                      lambda p: [_p(p, coefficient=0.25), _p(p, coefficient=0.0)]),
    "mean_reversion_flip": ("Planted mean reversion (-0.25) flips to momentum (+0.25).",
                            lambda p: [_p(p, coefficient=-0.25), _p(p, coefficient=0.25)]),
    "mean_reversion_fade": ("Planted mean reversion (-0.25) fades to nothing.",
                            lambda p: [_p(p, coefficient=-0.25), _p(p, coefficient=0.0)]),
    "reversion_to_momentum": (
        "Planted mean reversion (-0.35) flips to momentum (+0.35) 50 trading days after the "
        "clock start: the default demo's healing market (the old relation pays its costs, the "
        "new one is learnable within a few months).",
        lambda p: [_p(p, coefficient=-0.35), _p(p, coefficient=0.35)]),
    "regime_mix": ("Momentum +0.25; then no relation and doubled volatility; then mean "
                   "reversion -0.2 with volume at 40 %.",
                   lambda p: [_p(p, coefficient=0.25),
                              _p(p, coefficient=0.0, vol_per_day=2 * p.daily_vol),
                              _p(p, coefficient=-0.2, volume_factor=0.4, spread_factor=1.8)]),
}
"""Registered scenarios: name -> (description, template)."""

SCENARIO_CHANGE_OFFSETS_DAYS: dict[str, tuple[int, ...]] = {"reversion_to_momentum": (DEMO_CHANGE_OFFSET_DAYS,)}
"""Scenarios whose default change dates differ from ``DEFAULT_CHANGE_OFFSETS_DAYS``."""


def scenario_names() -> list[str]:
    return sorted(SCENARIOS)


def default_change_dates(anchor: dt.date, n_changes: int, scenario: str | None = None) -> tuple[dt.date, ...]:
    """Change dates a fixed number of business days after ``anchor`` (the default clock start)."""
    offsets = SCENARIO_CHANGE_OFFSETS_DAYS.get(scenario or "", DEFAULT_CHANGE_OFFSETS_DAYS)
    out = []
    for k in range(n_changes):
        offset = offsets[k] if k < len(offsets) else 125 * (k + 1)
        day = anchor
        for _ in range(offset):
            day = next_business_day(day)
        out.append(day)
    return tuple(out)


def resolve_scenario(symbol: str, choice: str | ScenarioChoice, profile: MarketProfile, seed: int,
                     anchor: dt.date) -> ScenarioInfo:
    """Build the ground truth of ``choice`` for one market; errors name the bad field."""
    if isinstance(choice, str):
        choice = ScenarioChoice(choice)
    if choice.name not in SCENARIOS:
        raise ValueError(f"unknown scenario {choice.name!r} for {symbol}; known: {', '.join(scenario_names())}")
    description, template = SCENARIOS[choice.name]
    params = template(profile)
    n_changes = len(params) - 1
    dates = choice.change_dates if choice.change_dates is not None else default_change_dates(anchor, n_changes, choice.name)
    if len(dates) != n_changes:
        raise ValueError(f"scenario {choice.name!r} for {symbol} needs {n_changes} change date(s), got {len(dates)}")
    if list(dates) != sorted(set(dates)):
        raise ValueError(f"change dates for {symbol} must be strictly increasing, got {list(dates)}")
    if not 1 <= choice.lookback_days <= 60:
        raise ValueError(f"lookback_days for {symbol} must be in [1, 60], got {choice.lookback_days}")
    for key, values in (choice.overrides or {}).items():
        if key not in params[0]:
            raise ValueError(f"unknown scenario override {key!r} for {symbol}; known: {', '.join(params[0])}")
        if len(values) != len(params):
            raise ValueError(f"override {key!r} for {symbol} needs {len(params)} values, got {len(values)}")
        for regime, value in zip(params, values):
            regime[key] = float(value)
    starts = [dt.date.min, *(_on_or_after_business_day(d) for d in dates)]
    regimes = []
    for start, prm in zip(starts, params):
        if abs(prm["coefficient"]) * math.sqrt(choice.lookback_days) >= 0.95:
            raise ValueError(f"coefficient {prm['coefficient']} with lookback {choice.lookback_days} "
                             f"for {symbol} is explosive; need |c|*sqrt(L) < 0.95")
        if prm["vol_per_day"] <= 0 or prm["volume_factor"] <= 0 or prm["spread_factor"] <= 0:
            raise ValueError(f"scenario {choice.name!r} for {symbol}: vol, volume and spread factors must be > 0")
        regimes.append(Regime(start=start, **prm))
    return ScenarioInfo(symbol, choice.name, description, seed, choice.lookback_days, tuple(regimes))


def history_scenario(symbol: str, name: str, description: str, profile: MarketProfile,
                     seed: int) -> ScenarioInfo:
    """Ground-truth stand-in for a market priced from real or user history (nothing planted)."""
    regime = Regime(dt.date.min, 0.0, profile.daily_vol, 0.0)
    return ScenarioInfo(symbol, name, description, seed, DEFAULT_LOOKBACK_DAYS, (regime,), synthetic=False)


def _on_or_after_business_day(day: dt.date) -> dt.date:
    return day if is_business_day(day) else next_business_day(day)


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticSeries:
    """Generated spot closes and per-day liquidity multipliers on the target days."""

    close: np.ndarray
    volume_factor: np.ndarray
    spread_factor: np.ndarray
    shocks: np.ndarray
    """|e_t|: the day's surprise size, so volume can rise on big days."""


def stream_seed(seed: int, *labels: str) -> list[int]:
    """A numpy SeedSequence entropy list from the universe seed and text labels (stable across runs)."""
    return [seed & 0xFFFFFFFF, *(zlib.crc32(label.encode()) for label in labels)]


def generate(info: ScenarioInfo, profile: MarketProfile, days: Sequence[dt.date]) -> SyntheticSeries:
    """Spot closes for ``days`` under ``info``'s regimes (deterministic for the seed and days)."""
    n = len(days)
    rng = np.random.default_rng(stream_seed(info.seed, info.symbol, info.name, "spot"))
    e = rng.standard_normal(n)
    # Regime index per day.
    starts = np.asarray([r.start.toordinal() if r.start != dt.date.min else 0 for r in info.regimes])
    ords = np.asarray([d.toordinal() for d in days])
    reg = np.searchsorted(starts, ords, side="right") - 1
    drift = np.asarray([r.drift_per_day for r in info.regimes])[reg]
    vol = np.asarray([r.vol_per_day for r in info.regimes])[reg]
    coef = np.asarray([r.coefficient for r in info.regimes])[reg]
    L = info.lookback_days
    scale = 1.0 / math.sqrt(L)
    log_base = math.log(profile.base_price)
    r = np.zeros(n)
    logp = np.empty(n)
    lp = log_base
    window = 0.0
    for t in range(n):
        f = window * scale
        rt = drift[t] + coef[t] * f + vol[t] * math.sqrt(1.0 - coef[t] ** 2) * e[t]
        rt -= _PULL_PER_DAY * (lp - log_base)
        if t == 0:
            rt = 0.0
        r[t] = rt
        window += rt
        if t >= L:
            window -= r[t - L]
        if t > 0:
            lp += rt
        logp[t] = lp
    vf = np.asarray([rg.volume_factor for rg in info.regimes])[reg]
    sf = np.asarray([rg.spread_factor for rg in info.regimes])[reg]
    return SyntheticSeries(np.exp(logp), vf, sf, np.abs(e))


def feature_and_target(log_returns: np.ndarray, lookback_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(f_t, r_t) pairs as the scenarios define them, for measuring the planted coefficient."""
    L = lookback_days
    c = np.concatenate([[0.0], np.cumsum(log_returns)])
    f = (c[L:-1] - c[:-L - 1]) / math.sqrt(L)
    return f, log_returns[L:]


def with_regime_starts(info: ScenarioInfo, dates: Sequence[dt.date]) -> ScenarioInfo:
    """Copy of ``info`` with new change dates (keeps the parameters)."""
    regimes = [info.regimes[0], *(replace(r, start=d) for r, d in zip(info.regimes[1:], dates))]
    return replace(info, regimes=tuple(regimes))
