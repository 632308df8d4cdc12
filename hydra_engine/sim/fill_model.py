"""The exchange's own fill model: spread, square-root impact, noise, queue and participation.

Its parameters are drawn from the universe seed per product and never leave the simulator, so
the engine's slippage estimate (which this module must never import) has something real to be
right or wrong about:

- A marketable order takes the touch: ask (bid) = path price +/- half the day's spread, plus
  impact ``k * sigma * sqrt(q / ADV)`` where ``sigma`` is the day's price volatility (price
  units), ``q`` the contracts filled so far including this fill and ``ADV`` the month's average
  daily volume, plus noise of a fraction of a tick.
- A resting limit fills at its limit when the path trades through it; when the path only touches
  it, it fills with a queue probability.
- Liquidity per step: the displayed touch size at the first opportunity of each session, then a
  participation cap on each minute's traded volume; so a large order against the day's volume
  fills in parts and may not complete within the session.
- Only path prices printing strictly after the order's ``start`` are used; prices sit on the tick
  grid; the result is deterministic for (seed, conId, start, end, order).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from hydra_engine.sim.market_types import Side, SimFill
from hydra_engine.sim.paths import IntradayPath
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


def touch_size(ctx: DayContext, params: HiddenFillParams, rng: np.random.Generator) -> int:
    return max(1, int(round(ctx.adv * params.touch_share * rng.lognormal(0.0, 0.4))))


def match_order(
    params: HiddenFillParams,
    seed: int,
    con_id: int,
    side: Side,
    qty: int,
    limit: float | None,
    start: dt.datetime,
    end: dt.datetime,
    sessions: Iterable[Callable[[], DayContext | None]],
) -> list[SimFill]:
    """Fills for one working order over ``(start, end]`` across the given sessions (oldest first)."""
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be 'BUY' or 'SELL', got {side!r}")
    if qty <= 0:
        raise ValueError(f"qty must be a positive whole number of contracts, got {qty}")
    if limit is not None and not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"limit must be a positive finite price or None, got {limit}")
    key = f"{start.isoformat()}|{end.isoformat()}|{side}|{qty}|{limit}"
    rng = np.random.default_rng(stream_seed(seed, "match", str(con_id), key))
    buy = side == "BUY"
    sign = 1.0 if buy else -1.0
    remaining = qty
    filled = 0
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
        capacity = float(touch_size(ctx, params, rng))
        cum = path.cum_volume
        for i in range(i0, i1 + 1):
            step_volume = cum[i] - (cum[i - 1] if i else 0)
            if i > i0:
                capacity += params.participation * float(step_volume)
            avail = min(remaining, int(capacity))
            if avail <= 0:
                continue
            price = float(path.price[i])
            bid, ask = touch_prices(price, ctx)
            touch = ask if buy else bid
            fill_qty = 0
            fill_price = 0.0
            marketable = limit is None or (touch <= limit if buy else touch >= limit)
            if marketable:
                impact = params.impact_k * ctx.sigma_price * math.sqrt((filled + avail) / max(ctx.adv, 1.0))
                noise = rng.normal(0.0, params.noise_ticks) * ctx.tick
                raw = touch + sign * impact + noise
                fill_price = tick_round(raw, ctx.tick, "up" if buy else "down")
                if limit is not None:
                    fill_price = min(fill_price, limit) if buy else max(fill_price, limit)
                fill_qty = avail
            else:
                assert limit is not None
                through = price < limit if buy else price > limit
                at_limit = abs(price - limit) < ctx.tick / 2
                if through or (at_limit and rng.random() < params.queue_fill_prob):
                    fill_qty = avail if through else max(1, avail // 2)
                    fill_price = tick_round(limit, ctx.tick, "down" if buy else "up")
            if fill_qty <= 0:
                continue
            capacity -= fill_qty
            remaining -= fill_qty
            filled += fill_qty
            fills.append(SimFill(time=path.step_time(i), qty=fill_qty, price=fill_price))
            if remaining <= 0:
                break
    return fills
