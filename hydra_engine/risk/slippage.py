"""Slippage: the cost model the order manager predicts with, and the realised cost it is judged by.

Model (square-root impact)::

    slippage = spread / 2  +  Y * daily_sigma * sqrt(qty / ADV)

Everything is in PRICE UNITS per contract unit of the quoted price (the same units as ``spread``,
``daily_sigma`` and the fill price; not multiplied by the contract multiplier), and also given in
basis points of the mid (``bps = price / mid * 10_000``). Positive is a cost. ``daily_sigma`` is the
standard deviation of daily price changes in price units; ``qty`` and ``adv`` are contracts.

Calibration is per market: the reconciler's pessimism multiplier (mean actual / mean predicted,
in bps) of each market, never a pooled one (price units do not add across markets, and a pooled
bps figure lets a cheap market hide an expensive one). ``SlippageModel.estimate(symbol, ...)``
keeps the raw prediction in ``price``/``bps`` (what the journal stores and the reconciler judges,
so a multiplier never feeds on itself) and the market's calibrated cost in
``expected_price``/``expected_bps`` (what a cost budget should use).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

DEFAULT_IMPACT_COEFF = 0.1
"""Y: a conservative square-root-law coefficient for thin futures (calibrate with the reconciler)."""


@dataclass(frozen=True, slots=True)
class SlippageEstimate:
    """Predicted cost of one order, per unit of price (positive is a cost)."""

    half_spread: float
    """Price units."""
    impact: float
    """Price units: Y * daily_sigma * sqrt(qty / ADV)."""
    price: float
    """Total predicted slippage in price units (half_spread + impact)."""
    bps: float
    """Total in basis points of the mid."""
    participation: float
    """qty / ADV (dimensionless)."""
    multiplier: float = 1.0
    """The market's own pessimism multiplier (1.0: uncalibrated); ``price``/``bps`` stay raw."""

    @property
    def expected_price(self) -> float:
        """Calibrated cost in price units: the raw prediction times the market's multiplier."""
        return self.price * self.multiplier

    @property
    def expected_bps(self) -> float:
        return self.bps * self.multiplier


def _check(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"estimate_slippage: {name}={value!r} must be a number")
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"estimate_slippage: {name}={value!r} must be finite")
    if positive and v <= 0:
        raise ValueError(f"estimate_slippage: {name}={value!r} must be > 0")
    if not positive and v < 0:
        raise ValueError(f"estimate_slippage: {name}={value!r} must be >= 0")
    return v


def estimate_slippage(
    *,
    spread: float,
    daily_sigma: float,
    qty: float,
    adv: float,
    mid_price: float,
    impact_coeff: float = DEFAULT_IMPACT_COEFF,
    multiplier: float = 1.0,
) -> SlippageEstimate:
    """Half the spread plus square-root market impact, in price units and bps of the mid.

    Raises ValueError naming the argument for NaN/inf, negative spread/sigma/qty/coefficient, or a
    non-positive ADV or mid (zero ADV has no meaningful participation: refuse rather than guess).
    """
    s = _check("spread", spread, positive=False)
    sigma = _check("daily_sigma", daily_sigma, positive=False)
    q = _check("qty", qty, positive=False)
    a = _check("adv", adv, positive=True)
    mid = _check("mid_price", mid_price, positive=True)
    y = _check("impact_coeff", impact_coeff, positive=False)
    k = _check("multiplier", multiplier, positive=True)
    participation = q / a
    half = s / 2.0
    impact = y * sigma * math.sqrt(participation)
    total = half + impact
    return SlippageEstimate(half, impact, total, total / mid * 10_000.0, participation, k)


class MarketCalibrationSource(Protocol):
    """One market's line of a reconciliation (``execution.reconciler.MarketReconciliation``)."""

    @property
    def symbol(self) -> str | None: ...
    @property
    def sufficient(self) -> bool: ...
    @property
    def pessimism_multiplier(self) -> float: ...


class CalibrationReport(Protocol):
    """What a calibration is read from: a reconciliation's per-market lines."""

    @property
    def markets(self) -> Iterable[MarketCalibrationSource]: ...


def _check_multiplier(symbol: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"slippage multiplier for {symbol}={value!r} must be a finite number > 0")
    return v


@dataclass(frozen=True, slots=True)
class SlippageCalibration:
    """Each market's own pessimism multiplier (bps-based); markets not listed keep 1.0."""

    multipliers: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, multipliers: Mapping[str, float]) -> SlippageCalibration:
        checked = {str(k): _check_multiplier(str(k), v) for k, v in multipliers.items()}
        return cls(MappingProxyType(checked))

    @classmethod
    def from_report(cls, report: CalibrationReport) -> SlippageCalibration:
        """The per-market multipliers of a reconciliation: only markets with enough live fills and a
        finite positive multiplier; never the pooled line."""
        out: dict[str, float] = {}
        for m in report.markets:
            pess = m.pessimism_multiplier
            if m.symbol and m.sufficient and math.isfinite(pess) and pess > 0:
                out[m.symbol] = pess
        return cls.of(out)

    def multiplier(self, symbol: str) -> float:
        return self.multipliers.get(symbol, 1.0)


@dataclass(frozen=True, slots=True)
class SlippageModel:
    """The square-root model with each market's own calibration."""

    impact_coeff: float = DEFAULT_IMPACT_COEFF
    calibration: SlippageCalibration = field(default_factory=SlippageCalibration)

    def estimate(self, symbol: str, *, spread: float, daily_sigma: float, qty: float, adv: float,
                 mid_price: float) -> SlippageEstimate:
        """``estimate_slippage`` for ``symbol``, carrying that market's multiplier."""
        return estimate_slippage(spread=spread, daily_sigma=daily_sigma, qty=qty, adv=adv, mid_price=mid_price,
                                 impact_coeff=self.impact_coeff, multiplier=self.calibration.multiplier(symbol))


def actual_slippage(direction: str, fill_price: float, arrival_mid: float) -> float:
    """Signed realised cost vs the arrival mid, price units: positive when paying above the mid
    on a BUY or selling below it on a SELL (negative is price improvement)."""
    if direction == "BUY":
        return float(fill_price) - float(arrival_mid)
    if direction == "SELL":
        return float(arrival_mid) - float(fill_price)
    raise ValueError(f"direction={direction!r}: must be 'BUY' or 'SELL'")


def to_bps(price_units: float, mid_price: float) -> float:
    """Price units -> basis points of ``mid_price`` (> 0)."""
    if not (mid_price > 0) or math.isinf(mid_price):
        raise ValueError(f"mid_price={mid_price!r} must be a finite number > 0")
    return price_units / mid_price * 10_000.0
