"""Position sizing: fractional Kelly, then hard caps on contracts and on a fraction of ADV.

Full Kelly is far too aggressive for a model whose edge is estimated (and for thin markets), so
the Kelly fraction is scaled by ``kelly_multiplier`` (a quarter by default) and the result is
capped twice: by ``max_contracts`` and by ``max_adv_fraction * ADV`` so one day's order never
becomes a large share of the market's volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _num(name: str, value: object, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}={value!r} must be a number")
    v = float(value)
    bad = math.isnan(v) or v > hi or (v <= lo if lo_open else v < lo)
    if bad:
        left = "(" if lo_open else "["
        raise ValueError(f"{name}={value!r} out of range {left}{lo}, {hi}]")
    return v


def kelly_fraction(win_prob: float, win_loss_ratio: float) -> float:
    """Full Kelly fraction f* = p - (1 - p) / b, floored at 0 (no edge: no bet).

    ``win_prob`` in [0, 1]; ``win_loss_ratio`` b = average win / average loss, > 0.
    """
    p = _num("win_prob", win_prob, 0.0, 1.0)
    b = _num("win_loss_ratio", win_loss_ratio, 0.0, math.inf, lo_open=True)
    return max(0.0, p - (1.0 - p) / b)


@dataclass(frozen=True, slots=True)
class SizingResult:
    """How many contracts and which limit bound the answer."""

    n_contracts: int
    kelly_full: float
    """Full Kelly fraction of equity."""
    kelly_used: float
    """After the multiplier (fraction of equity put at risk)."""
    kelly_contracts: int
    """Contracts fractional Kelly alone would take."""
    binding: str
    """'kelly', 'max_contracts', 'adv' or 'no_edge'."""


def size_position(
    *,
    win_prob: float,
    win_loss_ratio: float,
    equity: float,
    risk_per_contract: float,
    adv: float,
    max_contracts: int,
    kelly_multiplier: float = 0.25,
    max_adv_fraction: float = 0.05,
) -> SizingResult:
    """Contracts to hold: floor(kelly_multiplier * f* * equity / risk_per_contract), capped.

    ``equity`` and ``risk_per_contract`` (the loss of one contract on an adverse day, or its margin)
    are in account currency; ``adv`` is contracts per day (> 0); the result is never negative and
    never above ``max_contracts`` or ``floor(max_adv_fraction * adv)``.
    """
    eq = _num("equity", equity, 0.0, math.inf)
    rpc = _num("risk_per_contract", risk_per_contract, 0.0, math.inf, lo_open=True)
    a = _num("adv", adv, 0.0, math.inf, lo_open=True)
    mult = _num("kelly_multiplier", kelly_multiplier, 0.0, 1.0)
    frac = _num("max_adv_fraction", max_adv_fraction, 0.0, 1.0)
    if isinstance(max_contracts, bool) or not isinstance(max_contracts, int) or max_contracts < 0:
        raise ValueError(f"max_contracts={max_contracts!r} must be a whole number >= 0")
    full = kelly_fraction(win_prob, win_loss_ratio)
    used = full * mult
    if used <= 0.0 or eq == 0.0:
        return SizingResult(0, full, used, 0, "no_edge")
    kelly_n = int(math.floor(used * eq / rpc + 1e-9))
    adv_cap = int(math.floor(frac * a + 1e-9))
    n, binding = kelly_n, "kelly"
    if max_contracts < n:
        n, binding = max_contracts, "max_contracts"
    if adv_cap < n:
        n, binding = adv_cap, "adv"
    return SizingResult(max(0, n), full, used, kelly_n, binding)


def reduced_cap(max_contracts: int, size_fraction: float) -> int:
    """A contract cap scaled by the gate's ``size_fraction`` (drawdown re-entry): floored, but one
    contract stays possible while the fraction is above 0, so a one-lot market can re-enter."""
    frac = _num("size_fraction", size_fraction, 0.0, 1.0)
    if isinstance(max_contracts, bool) or not isinstance(max_contracts, int) or max_contracts < 0:
        raise ValueError(f"max_contracts={max_contracts!r} must be a whole number >= 0")
    if frac >= 1.0 or max_contracts == 0:
        return max_contracts
    return max(1 if frac > 0 else 0, int(math.floor(max_contracts * frac + 1e-9)))
