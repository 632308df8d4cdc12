"""Slippage: the cost model the order manager predicts with, and the realised cost it is judged by.

Model (square-root impact)::

    slippage = spread / 2  +  Y * daily_sigma * sqrt(qty / ADV)

Everything is in PRICE UNITS per contract unit of the quoted price (the same units as ``spread``,
``daily_sigma`` and the fill price; not multiplied by the contract multiplier), and also given in
basis points of the mid (``bps = price / mid * 10_000``). Positive is a cost. ``daily_sigma`` is the
standard deviation of daily price changes in price units; ``qty`` and ``adv`` are contracts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    participation = q / a
    half = s / 2.0
    impact = y * sigma * math.sqrt(participation)
    total = half + impact
    return SlippageEstimate(half, impact, total, total / mid * 10_000.0, participation)


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
