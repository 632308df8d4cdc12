"""ContractBook: the listed months of each market, asked of the gateway, and the month to hold.

The rule (front month, roll window) is the pure ``contracts.select_active_month``; this part
does the asking and remembers every month it has seen by conId, so a held month can be found
again after it stops being the active one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import structlog
from ib_async import Contract, ContractDetails, RequestError

from hydra_engine.broker.channel import RequestChannel
from hydra_engine.broker.contracts import (
    ContractMonth,
    MarketLike,
    ResolvedContract,
    month_from_details,
    select_active_month,
)
from hydra_engine.broker.errors import BrokerError, ContractNotFound

log = structlog.get_logger(__name__)


class ContractBook:
    """Contract months by market (from contract details) and by conId (every month seen)."""

    def __init__(self, channel: RequestChannel, *, now: Callable[[], dt.datetime]) -> None:
        self._channel = channel
        self._now = now
        self._months: dict[int, ContractMonth] = {}

    async def months(self, market: MarketLike) -> list[ContractMonth]:
        """Every listed month of ``market`` from the contract details."""
        ch = self._channel
        ch.require_session()
        probe = Contract(secType="FUT", symbol=market.symbol, exchange=market.exchange, currency=market.currency)
        try:
            details = await ch.ask(ch.ib.reqContractDetailsAsync(probe), f"contract details {market.symbol}")
        except RequestError as exc:
            raise ContractNotFound(
                f"{market.symbol} on {market.exchange} ({market.currency}): {exc.message} (IB {exc.code})", code=exc.code
            ) from exc
        months = [month_from_details(d) for d in details if d.contract is not None and d.contract.secType == "FUT"]
        if not months:
            raise ContractNotFound(
                f"{market.symbol} on {market.exchange} ({market.currency}): no futures contract details", code=200
            )
        for m in months:
            self._months[m.con_id] = m
        return months

    async def resolve(self, market: MarketLike, as_of: dt.date | None = None) -> ResolvedContract:
        """The month to hold on ``as_of`` (today by the engine clock): the front month, or the next
        one inside the roll window, counted on the market's calendar when it has one."""
        months = await self.months(market)
        day = as_of or self._now().date()
        calendar = None
        try:
            from hydra_engine.markets import MarketConfig, is_trading_day

            if isinstance(market, MarketConfig):
                calendar = lambda d: is_trading_day(market, d)  # noqa: E731
        except ImportError:  # pragma: no cover
            pass
        return select_active_month(market.symbol, months, day, int(market.roll_days), calendar)

    def known(self, con_id: int) -> ContractMonth | None:
        """A month seen in any earlier listing (None when never listed this session's lifetime)."""
        return self._months.get(con_id)

    async def front_hours(self, market: MarketLike) -> ContractDetails | None:
        """The nearest unexpired month's contract details (trading hours), freshly requested: the
        hours text covers only the days from when it was sent. None (date rule) when unavailable."""
        try:
            months = await self.months(market)
        except BrokerError as exc:
            log.warning("broker.bars_hours_unavailable", market=market.symbol, error=str(exc))
            return None
        today = self._now().date()
        live = [m for m in months if m.last_trade_date >= today and m.details is not None]
        if not live:
            return None
        return min(live, key=lambda m: (m.last_trade_date, m.con_id)).details
