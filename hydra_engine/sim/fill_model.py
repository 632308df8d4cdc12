"""The exchange's own fill model: spread, square-root impact, noise, queue and participation.

Its parameters are drawn from the universe seed per product and never leave the simulator, so
the engine's slippage estimate (which this module must never import) has something real to be
right or wrong about:

- A marketable order takes the touch: ask (bid) = path price +/- half the day's spread, plus
  impact ``k * sigma * sqrt(q / ADV)`` where ``sigma`` is the day's price volatility (price
  units), ``q`` the order's remaining quantity before the fill (the demand the market sees) and
  ``ADV`` the month's average daily volume, plus noise of a fraction of a tick.
- A resting limit fills at its limit when the path trades through it; when the path only touches
  it, it fills with a queue probability.
- Liquidity per step: an order that fits in the displayed touch size fills at once; a larger
  one gets a participation share of each minute's traded volume, so a large order against the
  day's volume fills in parts and may not complete within the session.
- Only path prices printing strictly after the order's ``start`` are used; prices sit on the tick
  grid; noise and queue draws belong to the step (seeded by seed, conId, trade date), so the
  result is deterministic and the same whether a window is played in one call or several.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from hydra_engine.sim.market_types import Side, SimFill
from hydra_engine.sim.intraday_paths import IntradayPath
from hydra_engine.sim.scenarios import stream_seed
from hydra_engine.sim.term_structure import tick_round


@dataclass(frozen=True, slots=True)
class HiddenFillParams:
    """The exchange's private execution parameters for one product."""

    impact_k: float
    """k in k * sigma * sqrt(q / ADV)."""
    noise_ticks: float
    """Standard deviation of per-fill price noise, ticks."""
    participation: float
    """Largest share of each minute's traded volume one order may take."""
    queue_fill_prob: float
    """Chance per step that a limit resting exactly at the traded price gets filled."""
    touch_share: float
    """Displayed touch size as a share of ADV (at least one contract)."""


def hidden_params(seed: int, symbol: str) -> HiddenFillParams:
    """Draw a product's hidden parameters from the universe seed."""
    rng = np.random.default_rng(stream_seed(seed, symbol, "fill-model"))
    return HiddenFillParams(
        impact_k=float(rng.uniform(0.35, 1.1)),
        noise_ticks=float(rng.uniform(0.2, 0.7)),
        participation=float(rng.uniform(0.08, 0.2)),
        queue_fill_prob=float(rng.uniform(0.15, 0.4)),
        touch_share=float(rng.uniform(0.0015, 0.004)),
    )


@dataclass(frozen=True, slots=True)
class DayContext:
    """What the fill model needs to know about one session of one month."""

    path: IntradayPath
    spread_ticks: int
    sigma_price: float
    """Daily price standard deviation, price units."""
    adv: float
    """Average daily volume of the month, contracts."""
    tick: float


def half_spread(ctx: DayContext) -> float:
    return ctx.spread_ticks * ctx.tick / 2.0


def touch_prices(price: float, ctx: DayContext) -> tuple[float, float]:
    """Bid and ask around a path price with the day's spread, both on the tick grid."""
    bid = tick_round(price - half_spread(ctx), ctx.tick, "down")
    ask = tick_round(bid + ctx.spread_ticks * ctx.tick, ctx.tick, "nearest")
    return bid, ask


def touch_size(ctx: DayContext, params: HiddenFillParams, step: int) -> int:
    """Displayed size at the touch at one step (at least one contract)."""
    z = float(ctx.path.touch_z[step])
    return max(1, int(round(ctx.adv * params.touch_share * math.exp(0.4 * z))))


def match_order(
    params: HiddenFillParams,
    con_id: int,
    side: Side,
    qty: int,
    limit: float | None,
    start: dt.datetime,
    end: dt.datetime,
    sessions: Iterable[Callable[[], DayContext | None]],
) -> list[SimFill]:
    """Fills for one working order over ``(start, end]`` across the given sessions (oldest first).

    Each step's outcome depends only on the step and on the order's side, limit and remaining
    quantity, so playing a window in one call or in several consecutive calls (passing the
    remaining quantity) gives the same fills.
    """
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be 'BUY' or 'SELL', got {side!r}")
    if isinstance(qty, bool) or not isinstance(qty, (int, np.integer)) or qty <= 0:
        raise ValueError(f"qty must be a positive whole number of contracts, got {qty!r}")
    if limit is not None and not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"limit must be a positive finite price or None, got {limit}")
    buy = side == "BUY"
    sign = 1.0 if buy else -1.0
    remaining = int(qty)
    fills: list[SimFill] = []
    for make in sessions:
        if remaining <= 0:
            break
        ctx = make()
        if ctx is None:
            continue
        path = ctx.path
        i0 = path.first_step_after(start)
        i1 = path.last_step_at_or_before(end)
        if i0 > i1:
            continue
        # Participation allowance per step, anchored at the session open (not at the call).
        cum = path.cum_volume[max(i0 - 1, 0): i1 + 1].astype(np.float64)
        allowed = np.floor(params.participation * cum)
        allow = np.diff(allowed) if i0 > 0 else np.concatenate([[allowed[0]], np.diff(allowed)])
        for k, i in enumerate(range(i0, i1 + 1)):
            shown = touch_size(ctx, params, i)
            cap = remaining if remaining <= shown else min(remaining, int(allow[k]))
            if cap <= 0:
                continue
            price = float(path.price[i])
            bid, ask = touch_prices(price, ctx)
            touch = ask if buy else bid
            marketable = limit is None or (touch <= limit if buy else touch >= limit)
            if marketable:
                impact = params.impact_k * ctx.sigma_price * math.sqrt(remaining / max(ctx.adv, 1.0))
                noise = float(path.fill_noise[i]) * params.noise_ticks * ctx.tick
                fill_price = tick_round(touch + sign * impact + noise, ctx.tick, "up" if buy else "down")
                if limit is not None:
                    fill_price = min(fill_price, limit) if buy else max(fill_price, limit)
                fill_qty = cap
            else:
                assert limit is not None
                through = price < limit if buy else price > limit
                at_limit = abs(price - limit) < ctx.tick / 2
                if not (through or (at_limit and float(path.queue_u[i]) < params.queue_fill_prob)):
                    continue
                fill_qty = cap if through else max(1, cap // 2)
                fill_price = tick_round(limit, ctx.tick, "down" if buy else "up")
            remaining -= fill_qty
            fills.append(SimFill(time=path.step_time(i), qty=fill_qty, price=fill_price))
            if remaining <= 0:
                break
    return fills
