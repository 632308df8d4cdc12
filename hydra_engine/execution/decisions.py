"""The cycle's pure decisions: which trading date is due, in which session it is executed, and how
a champion's probability becomes a target position. No I/O: the cycle gathers the inputs (account,
bars, quote) and the order manager orders only the difference."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from hydra_engine.markets import (
    MarketConfig,
    decision_at,
    is_trading_day,
    last_decision_at_or_before,
    local_date,
    next_trading_day,
    trading_date_at,
)
from hydra_engine.risk.sizing import SizingResult, size_position

if TYPE_CHECKING:
    from hydra_engine.execution.cycle import CycleConfig

TRADE_LOSS_HEADROOM = 0.8
"""Size to 80% of the gate's single-trade loss cap: the order manager measures sigma on the traded
month's own bars, which differ a little from the continuous history sized on here."""

@dataclass(frozen=True, slots=True)
class TargetDecision:
    """How the signal became a target (contracts, signed)."""

    target: int
    direction: str
    """LONG, FLAT or SHORT."""
    p_up: float
    sizing: SizingResult | None
    risk_per_contract: float
    """Account currency per contract at ``k_sigma``."""
    cap_trade_loss: int
    """Contracts allowed by the single-trade loss cap."""

    def to_dict(self) -> dict[str, Any]:
        s = self.sizing
        return {
            "target": self.target, "direction": self.direction, "p_up": round(self.p_up, 6),
            "risk_per_contract": round(self.risk_per_contract, 2), "cap_trade_loss": self.cap_trade_loss,
            "kelly_full": None if s is None else round(s.kelly_full, 6),
            "kelly_contracts": None if s is None else s.kelly_contracts,
            "binding": "trade_loss" if s is not None and self.cap_trade_loss < s.n_contracts else (None if s is None else s.binding),
        }


def target_from_signal(
    p_up: float,
    *,
    config: "CycleConfig",
    market: MarketConfig,
    equity: float,
    daily_sigma: float,
    multiplier: float,
    adv: float,
    max_trade_loss_pct: float | None = None,
) -> TargetDecision:
    """Long / flat / short by thresholds, sized by fractional Kelly, capped by the market's contracts,
    its ADV fraction and the single-trade loss cap (so the gate is not asked for what it refuses)."""
    if not (isinstance(p_up, (int, float)) and 0.0 <= p_up <= 1.0):
        raise ValueError(f"p_up = {p_up!r}: must be a probability in [0, 1]")
    if p_up > config.long_threshold:
        sign, direction, win_prob = 1, "LONG", float(p_up)
    elif p_up < config.short_threshold and config.allow_short:
        sign, direction, win_prob = -1, "SHORT", 1.0 - float(p_up)
    else:
        return TargetDecision(0, "FLAT", float(p_up), None, 0.0, 0)
    rpc = config.k_sigma * max(daily_sigma, 0.0) * max(multiplier, 0.0)
    if not math.isfinite(rpc) or rpc <= 0 or adv <= 0 or equity <= 0:
        return TargetDecision(0, "FLAT", float(p_up), None, rpc if math.isfinite(rpc) else 0.0, 0)
    sizing = size_position(
        win_prob=win_prob, win_loss_ratio=config.win_loss_ratio, equity=equity, risk_per_contract=rpc, adv=adv,
        max_contracts=market.max_contracts, kelly_multiplier=config.kelly_multiplier,
        max_adv_fraction=market.max_adv_fraction,
    )
    cap_pct = config.max_trade_loss_pct if max_trade_loss_pct is None else max_trade_loss_pct
    cap = int(math.floor(TRADE_LOSS_HEADROOM * cap_pct / 100.0 * equity / rpc + 1e-9))
    n = min(sizing.n_contracts, cap)
    if n <= 0:
        direction = "FLAT"
    return TargetDecision(sign * n if n > 0 else 0, direction, float(p_up), sizing, rpc, cap)


def clamp_move(target: int, current: float, max_order: int) -> int:
    """``target`` moved toward ``current`` so that an order adding exposure is at most ``max_order``
    contracts (the gate judges such an order's own size against the single-trade loss cap; a
    reversal is one such order, so it goes flat first). Orders that only reduce are never clamped."""
    cur = int(current)
    if target == cur:
        return int(target)
    reducing = cur != 0 and (target == 0 or (target > 0) == (cur > 0)) and abs(target) < abs(cur)
    step = int(target) - cur
    if reducing or abs(step) <= max(max_order, 0):
        return int(target)
    return cur + (max(max_order, 0) if step > 0 else -max(max_order, 0))


def due_trading_date(market: MarketConfig, now: dt.datetime, *, force: bool = False) -> dt.date:
    """The trading date whose cycle is due at ``now``: the latest decision at or before ``now``;
    with ``force`` today's trading date even before its decision time (a forced, early cycle)."""
    if force:
        today = local_date(market, now)
        if is_trading_day(market, today):
            return today
    return last_decision_at_or_before(market, now)[0]


def execution_date(market: MarketConfig, decision_date: dt.date, now: dt.datetime) -> dt.date:
    """The trading date of the session the decision on ``decision_date`` is executed in.

    A decision taken after D's close is worked in the next liquid session, D+1: its contract month,
    its daily P&L base and its order caps are all as of that session, never as of D. A forced cycle
    before the decision time (D's session still open) executes in D itself."""
    if now >= decision_at(market, decision_date):
        return next_trading_day(market, decision_date)
    return max(decision_date, trading_date_at(market, now))


def bars_until(frame: Any, day: dt.date) -> Any:
    """Rows of a date-indexed bar frame dated ``day`` or earlier (completed before the decision)."""
    if frame is None or len(frame) == 0:
        return frame
    return frame[frame.index <= pd.Timestamp(day)]


