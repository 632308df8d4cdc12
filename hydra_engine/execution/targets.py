"""Moving a market's position to a target: order only the difference, roll expiring months.

A repeated or forced cycle must never pile up contracts, so the order is ``target - current`` in
the active month. A position still held in an earlier month (inside its roll window) is closed as
the first leg of a two-leg roll (a reducing order), and the target is then built in the active
month as the second leg; both legs pass the risk gate like any order. Broker positions that are
not known stop everything: unknown is never flat.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from hydra_engine.broker.contracts import ContractMonth, MarketLike
from hydra_engine.broker.errors import BrokerError, StateUnknown
from hydra_engine.execution.account_view import account_view
from hydra_engine.markets import MarketConfig, is_trading_day

if TYPE_CHECKING:
    from hydra_engine.execution.order_manager import OrderManager, RouteResult
    from hydra_engine.store.equity import EquityRepo

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MarketStats:
    """Liquidity and risk of one month from its recent completed bars."""

    adv: float
    """Average daily volume, contracts."""
    sigma: float
    """Standard deviation of daily close-to-close changes, price units."""


@dataclass(frozen=True, slots=True)
class MoveResult:
    """What ``move_to_target`` did for one market."""

    symbol: str
    target: int
    before: dict[str, float]
    """Signed contracts per local symbol before any order."""
    legs: tuple[RouteResult, ...]
    rolled: bool
    reasons: tuple[str, ...] = ()

    @property
    def filled(self) -> float:
        return sum(leg.filled for leg in self.legs)


@dataclass(frozen=True, slots=True)
class TargetLeg:
    """One order of a move to a target: signed contracts, whether it only reduces, and why."""

    qty: int
    reducing: bool
    purpose: str


def target_legs(current: int, target: int) -> tuple[TargetLeg, ...]:
    """The orders that take ``current`` to ``target``: a reversal is two legs, flatten then open.

    The flattening leg only reduces, so it passes the gate in REDUCING state and the losing side
    is closed; the opening leg is checked on its own (denied in REDUCING with its reason)."""
    diff = target - current
    if diff == 0:
        return ()
    if current != 0 and target != 0 and (current > 0) != (target > 0):
        return (TargetLeg(-current, True, "flatten"), TargetLeg(target, False, "target"))
    reducing = current != 0 and abs(target) < abs(current)
    return (TargetLeg(diff, reducing, "target"),)


def market_stats(bars: Sequence[Any], window: int = 20) -> MarketStats:
    """ADV and sigma over the last ``window`` bars (NaN-free; zeros when there is no history)."""
    recent = list(bars)[-(window + 1):]
    vols = [float(b.volume) for b in recent[-window:] if b.volume is not None and b.volume >= 0]
    adv = statistics.fmean(vols) if vols else 0.0
    closes = [float(b.close) for b in recent]
    diffs = [b - a for a, b in zip(closes, closes[1:], strict=False)]
    sigma = statistics.stdev(diffs) if len(diffs) >= 2 else 0.0
    return MarketStats(adv=adv, sigma=sigma if math.isfinite(sigma) else 0.0)


async def position_notional(gw: Any, positions: Sequence[Any], markets: Sequence[MarketLike] = ()) -> float:
    """Gross futures exposure (account currency): the sum of |contracts| x multiplier x mark.

    IB reports GrossPositionValue 0 for futures, so exposure is never read from the account. The
    mark is the held month's quote mid; without one, the broker's portfolio mark, then the
    position's average cost."""
    by_symbol = {m.symbol: m for m in markets}
    total = 0.0
    for p in positions:
        if p.quantity:
            mult = p.multiplier or 1.0
            total += abs(p.quantity) * mult * await _mark(gw, p, by_symbol.get(p.symbol), mult)
    return total


async def _mark(gw: Any, pos: Any, market: MarketLike | None, mult: float) -> float:
    month = gw.known_month(pos.con_id)
    if month is None and market is not None:
        try:
            await gw.contract_months(market)  # lists (and caches) the held month
        except BrokerError as exc:
            log.warning("order.mark_months_failed", symbol=pos.symbol, error=str(exc))
        month = gw.known_month(pos.con_id)
    if month is not None:
        try:
            return float((await gw.get_quote(month)).mid)
        except BrokerError as exc:
            log.warning("order.mark_quote_failed", symbol=pos.local_symbol, error=str(exc))
    mark = gw.portfolio_mark(pos.con_id)
    return mark if mark is not None else pos.avg_cost / mult


def market_calendar(market: MarketLike) -> Callable[[dt.date], bool] | None:
    """The market's trading-day predicate (exchange holidays) for P&L staleness; None (weekdays)
    for a market without a configured calendar."""
    if isinstance(market, MarketConfig):
        return lambda d: is_trading_day(market, d)
    return None


async def move_to_target(
    om: OrderManager,
    market: MarketLike,
    target: int,
    *,
    equity: EquityRepo | None = None,
    trading_date: dt.date | None = None,
    k_sigma: float = 3.0,
) -> MoveResult:
    """Bring ``market``'s position to ``target`` contracts (signed), rolling if needed."""
    gw = om.gateway
    if int(target) != target:
        raise ValueError(f"target={target} for {market.symbol} must be a whole number of contracts")
    if not gw.is_connected or not gw.state_known:
        raise StateUnknown(f"{market.symbol}: broker state unknown (not connected or not reconciled); trading waits")
    busy = [w.order_ref for w in om.working_orders if w.month.symbol == market.symbol]
    if busy:
        return MoveResult(market.symbol, int(target), {}, (), False,
                          (f"orders still working for {market.symbol}: {', '.join(busy)}; not adding more",))
    resolved = await gw.resolve_contract(market, as_of=trading_date)
    positions = await gw.get_positions()
    held = {p.con_id: p for p in positions if p.symbol == market.symbol and p.quantity}
    before = {p.local_symbol: p.quantity for p in held.values()}
    gross = await position_notional(gw, positions, [market])  # account-wide, for the gate's gross limit
    if equity is not None:  # P&L since the close mark of the last session before the order's session
        calendar = market_calendar(market) or (lambda d: d.weekday() < 5)
        session = trading_date or gw.now().date()
        account = (await account_view(gw, equity, session, calendar)).snapshot
    else:
        account = await gw.get_account_summary()
    daily_pnl = account.daily_pnl if account.daily_pnl is not None and not account.daily_pnl_stale else 0.0
    peak = account.peak_equity if account.peak_equity is not None else account.net_liquidation
    legs: list[RouteResult] = []
    reasons: list[str] = []
    rolled = False

    for con_id, pos in held.items():
        if con_id == resolved.active.con_id:
            continue
        month = gw.known_month(con_id)
        if month is None:
            reasons.append(f"{pos.local_symbol}: held month not listed any more; close it by hand")
            continue
        rolled = True
        leg = await _route(
            om, month, -pos.quantity, pos.quantity, account.net_liquidation, daily_pnl, peak, k_sigma,
            reducing=True, purpose="roll-out", trading_date=trading_date, stale=account.daily_pnl_stale,
            max_adv_fraction=getattr(market, "max_adv_fraction", None), gross_exposure=gross,
        )
        legs.append(leg)
        if leg.filled < abs(pos.quantity):
            reasons.append(f"roll-out of {pos.local_symbol} incomplete ({leg.filled:g}/{abs(pos.quantity):g}): not rolling in")
            return MoveResult(market.symbol, int(target), before, tuple(legs), rolled, tuple(reasons))

    current = held[resolved.active.con_id].quantity if resolved.active.con_id in held else 0.0
    for step in target_legs(int(current), int(target)):
        leg = await _route(
            om, resolved.active, step.qty, current, account.net_liquidation, daily_pnl, peak, k_sigma,
            reducing=step.reducing, purpose=step.purpose if step.reducing or not rolled else "roll-in",
            trading_date=trading_date, stale=account.daily_pnl_stale,
            max_adv_fraction=getattr(market, "max_adv_fraction", None), gross_exposure=gross,
        )
        legs.append(leg)
        if leg.filled < abs(step.qty):
            if step.reducing and step.purpose == "flatten":
                reasons.append(f"flattening leg incomplete ({leg.filled:g}/{abs(step.qty):g}): not opening "
                               f"the {'short' if target < 0 else 'long'} side")
            break
        current += step.qty
    log.info(
        "order.move_to_target", symbol=market.symbol, target=int(target), before=before, rolled=rolled,
        legs=[(leg.direction, leg.requested, leg.filled, leg.status) for leg in legs],
    )
    return MoveResult(market.symbol, int(target), before, tuple(legs), rolled, tuple(reasons))


async def _route(
    om: OrderManager,
    month: ContractMonth,
    signed_qty: float,
    current: float,
    equity: float,
    daily_pnl: float,
    peak: float,
    k_sigma: float,
    *,
    reducing: bool,
    purpose: str,
    trading_date: dt.date | None,
    stale: bool = False,
    max_adv_fraction: float | None = None,
    gross_exposure: float | None = None,
) -> RouteResult:
    gw = om.gateway
    quote = await gw.get_quote(month)
    bars = await gw.get_daily_bars(month, lookback_days=45)
    stats = market_stats(bars)
    n = int(abs(signed_qty))
    after = current + signed_qty
    mult = month.multiplier or 1.0
    return await om.route_order(
        month,
        "BUY" if signed_qty > 0 else "SELL",
        n,
        stats.adv,
        quote.mid,
        daily_pnl,
        peak,
        equity,
        after * quote.mid * mult,
        k_sigma * stats.sigma * mult * n,
        current,
        reducing=reducing,
        purpose=purpose,
        trading_date=trading_date,
        daily_sigma=stats.sigma,
        stale_pnl=stale,
        max_adv_fraction=max_adv_fraction,
        gross_exposure=gross_exposure,
    )
