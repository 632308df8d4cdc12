"""Slicing a large order against average daily volume.

A thin market cannot absorb a big order at once: each child order is at most a fraction of ADV
(the market's ``max_adv_fraction``, at least one contract), worked one after another through the
patience schedule. Each child is a separate order with its own orderRef and its own gate check.
"""

from __future__ import annotations

import math


def slice_sizes(n_contracts: int, adv: float, max_adv_fraction: float, max_slices: int = 50) -> list[int]:
    """Child order sizes (contracts) adding up to ``n_contracts``, largest first.

    ``adv`` in contracts per day; ``max_adv_fraction`` in (0, 1]. A market too thin for even one
    contract per slice still gets one-contract slices (the risk gate decides whether to trade).
    """
    if n_contracts < 0:
        raise ValueError(f"n_contracts={n_contracts} must be >= 0")
    if not 0 < max_adv_fraction <= 1:
        raise ValueError(f"max_adv_fraction={max_adv_fraction} must be in (0, 1]")
    if max_slices < 1:
        raise ValueError(f"max_slices={max_slices} must be >= 1")
    if n_contracts == 0:
        return []
    per = max(1, math.floor(max(adv, 0.0) * max_adv_fraction)) if adv and adv > 0 else n_contracts
    count = math.ceil(n_contracts / per)
    if count > max_slices:
        count = max_slices
    base, extra = divmod(n_contracts, count)
    return [base + (1 if i < extra else 0) for i in range(count)]
