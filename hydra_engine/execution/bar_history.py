"""The stored continuous history kept equal to the broker's back-adjusted series.

A continuous (CONTFUT) history is back-adjusted: at each roll the broker rescales every older bar so
returns carry no roll gap, and only the newest bars keep their traded level. Appending just the new
bars to what was stored before the roll would leave a jump of the calendar spread in the stored
series, which features, labels and the drift detectors would read as a one-day move. So each refresh
asks again for a few days already stored; if the broker's prices for them changed, the history was
re-adjusted and the whole stored series is replaced with a fresh one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from hydra_engine.markets import MarketConfig
    from hydra_engine.ports import Broker
    from hydra_engine.store.bars import BarRepo

log = structlog.get_logger(__name__)

CONTINUOUS = "CONTFUT"
"""Bar-store contract key of the continuous (back-adjusted) history features are built on."""
OVERLAP_DAYS = 10
"""Calendar days re-requested to see whether the broker re-adjusted the history (a roll)."""
RELATIVE_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class BarRefresh:
    new: int
    """Bars after the last stored one."""
    readjusted: bool
    """True when the broker's older prices changed (a roll) and the stored series was replaced."""


async def refresh_continuous(broker: Broker, bars: BarRepo, market: MarketConfig, history_days: int) -> BarRefresh:
    """Bring the stored CONTFUT bars of ``market`` up to date with the broker's series."""
    latest = await bars.latest_date(market.symbol, CONTINUOUS)
    if latest is None:
        fresh = await broker.get_daily_bars(market, since=None, lookback_days=history_days)
        await bars.upsert(market.symbol, CONTINUOUS, fresh)
        return BarRefresh(len(fresh), False)
    since = latest - dt.timedelta(days=OVERLAP_DAYS)
    got = await broker.get_daily_bars(market, since=since, lookback_days=history_days)
    stored = await bars.load(market.symbol, CONTINUOUS, start=since + dt.timedelta(days=1), end=latest)
    known = {ts.date(): float(c) for ts, c in zip(stored.index, stored["close"], strict=True)}
    moved = [b for b in got if b.date in known and abs(b.close - known[b.date]) > RELATIVE_TOLERANCE * abs(known[b.date])]
    new = [b for b in got if b.date > latest]
    if not moved:
        if new:
            await bars.upsert(market.symbol, CONTINUOUS, new)
        return BarRefresh(len(new), False)
    first = await bars.load(market.symbol, CONTINUOUS, limit=None)
    span = max(history_days, (latest - first.index[0].date()).days + 30) if len(first) else history_days
    fresh = await broker.get_daily_bars(market, since=None, lookback_days=span)
    await bars.replace(market.symbol, CONTINUOUS, fresh)
    log.info("bars.readjusted", market=market.symbol, changed=len(moved), bars=len(fresh),
             reason="the broker re-adjusted its continuous history (a roll): stored series replaced")
    return BarRefresh(len(new), True)
