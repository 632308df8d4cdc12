"""Quotes and daily bars: the gateway's market-data requests.

Quotes are one-shot snapshots flagged live or delayed (market data type 1 or 3). Daily bars are
completed sessions only and incremental: pass the last stored bar's date as ``since``. A pacing
violation (IB 162) backs off and retries, then raises ``PacingViolation``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

import structlog
from ib_async import IB, BarData, Contract, ContractDetails, RequestError, Ticker

from hydra_engine.broker.account import finite_price
from hydra_engine.broker.contracts import ContractMonth, MarketLike
from hydra_engine.broker.errors import (
    BrokerError,
    ContractNotFound,
    NotConnected,
    PacingViolation,
)
from hydra_engine.broker.records import BarRecord, QuoteSnapshot

log = structlog.get_logger(__name__)

DELAYED_TYPES = frozenset({3, 4})

Barrier = Callable[[float], Awaitable[None]]
"""A round trip to the gateway (``BrokerGateway.barrier``): every message sent before it is applied."""


class QuoteFetcher:
    """Quotes from one streaming subscription per month, kept while the session lives.

    A snapshot request can take IB ~11 s to end; a subscription's first ticks come at once and
    later reads cost one round trip: a ``reqCurrentTime`` barrier, after which every tick the
    gateway sent before it has been applied (so a lock-step run reads the book as of its clock).
    Subscriptions die with the session and after 1101 (data lost); ``resubscribe`` renews them.
    """

    def __init__(
        self, ib: IB, *, barrier: Barrier, now: Callable[[], dt.datetime], market_data_type: int
    ) -> None:
        """``market_data_type``: what was asked of the gateway (1 live, 3 delayed), for a ticker
        that does not say."""
        self._ib = ib
        self._barrier = barrier
        self._now = now
        self._market_data_type = market_data_type
        self._tickers: dict[int, tuple[Ticker, Contract]] = {}
        """conId -> (ib_async Ticker, Contract)."""

    def reset(self) -> None:
        """The session is gone: ib_async dropped every ticker."""
        self._tickers.clear()

    def resubscribe(self) -> None:
        """After 1101 (market data lost): request every subscription again."""
        ib = self._ib
        for con_id, (_ticker, contract) in list(self._tickers.items()):
            try:
                ib.cancelMktData(contract)
            except Exception:  # noqa: BLE001 - already gone at the gateway
                pass
            self._tickers[con_id] = (ib.reqMktData(contract, "", False, False), contract)
        if self._tickers:
            log.info("broker.quotes_resubscribed", n=len(self._tickers))

    def _drop_expired(self) -> None:
        """Cancel the subscriptions of months past their last trading day: each roll adds one, and a
        session that lives for months (or a lock-step run over years) would keep them all streaming."""
        today = self._now().strftime("%Y%m%d")
        for con_id, (_ticker, contract) in list(self._tickers.items()):
            last = contract.lastTradeDateOrContractMonth or ""
            if len(last) >= 8 and last[:8] < today:
                try:
                    self._ib.cancelMktData(contract)
                except Exception:  # noqa: BLE001 - already gone at the gateway
                    pass
                del self._tickers[con_id]
                log.debug("broker.quote_unsubscribed", con_id=con_id, last_trade_date=last[:8])

    async def snapshot(self, month: ContractMonth, timeout_s: float) -> QuoteSnapshot:
        ib = self._ib
        entry = self._tickers.get(month.con_id)
        try:
            if entry is None:
                self._drop_expired()
                contract = month.qualified()
                ticker = ib.reqMktData(contract, "", False, False)
                self._tickers[month.con_id] = (ticker, contract)
            else:
                ticker = entry[0]
                await self._barrier(timeout_s)  # every tick sent before now has been applied
            await self._two_sided(ticker, timeout_s)
        except RequestError as exc:
            self._tickers.pop(month.con_id, None)
            raise BrokerError(f"quote {month.local_symbol}: {exc.message} (IB {exc.code})", code=exc.code) from exc
        except TimeoutError as exc:
            self._tickers.pop(month.con_id, None)
            raise BrokerError(f"quote {month.local_symbol}: no two-sided market within {timeout_s:.1f}s") from exc
        except ConnectionError as exc:
            self._tickers.pop(month.con_id, None)
            raise NotConnected(f"quote {month.local_symbol}: {exc}") from exc
        t = ticker
        if not (finite_price(t.bid) and finite_price(t.ask)) or t.ask < t.bid:
            raise BrokerError(f"quote {month.local_symbol}: no two-sided market (bid={t.bid}, ask={t.ask})")
        md_type = int(t.marketDataType or self._market_data_type)
        last = float(t.last) if finite_price(t.last) else None
        return QuoteSnapshot(
            con_id=month.con_id,
            symbol=month.symbol,
            bid=float(t.bid),
            ask=float(t.ask),
            last=last,
            at=self._now(),
            data_type="delayed" if md_type in DELAYED_TYPES else "live",
            min_tick=month.min_tick or None,
        )

    async def _two_sided(self, ticker: Ticker, timeout_s: float) -> None:
        """Wait (event-driven) until the ticker holds a bid and an ask."""
        if finite_price(ticker.bid) and finite_price(ticker.ask):
            return
        ready = asyncio.Event()

        def on_update(t: Ticker) -> None:
            if finite_price(t.bid) and finite_price(t.ask):
                ready.set()

        ticker.updateEvent += on_update
        try:
            await asyncio.wait_for(ready.wait(), timeout_s)
        finally:
            ticker.updateEvent -= on_update


def _duration(days: int) -> str:
    """IB duration string covering ``days`` calendar days (D up to 365, then whole years)."""
    days = max(1, days)
    if days <= 365:
        return f"{days} D"
    return f"{math.ceil(days / 365)} Y"


def _bar_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value)
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


class BarFetcher:
    """Completed daily bars, incremental, with pacing back-off."""

    def __init__(
        self,
        ib: IB,
        *,
        now: Callable[[], dt.datetime],
        timeout_s: float,
        retries: int,
        backoff_s: float,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        """``sleep``: the pacing back-off (real seconds: IB's pacing windows run on its clock)."""
        self._ib = ib
        self._now = now
        self._timeout = timeout_s
        self._retries = retries
        self._backoff = backoff_s
        self._sleep = sleep

    async def daily(
        self,
        target: ContractMonth | MarketLike,
        *,
        since: dt.date | None,
        lookback_days: int,
        hours: ContractDetails | None = None,
    ) -> list[BarRecord]:
        """``hours``: contract details whose trading hours decide completeness for a CONTFUT
        request (which has none of its own): the front month's, as the gateway resolves them."""
        if isinstance(target, ContractMonth):
            contract = target.qualified()
            label = target.local_symbol
            details = target.details
        else:
            contract = Contract(
                secType="CONTFUT", symbol=target.symbol, exchange=target.exchange, currency=target.currency
            )
            label = f"{target.symbol} CONTFUT"
            details = hours
        now = self._now()
        today = now.date()
        days = (today - since).days + 3 if since else lookback_days
        if days <= 0:
            return []
        bars = await self._request(contract, label, _duration(days))
        out: list[BarRecord] = []
        for b in bars:
            d = _bar_date(b.date)
            if since is not None and d <= since:
                continue
            if not self._completed(d, now, details):
                continue
            out.append(BarRecord(date=d, open=b.open, high=b.high, low=b.low, close=b.close, volume=float(b.volume)))
        return out

    @staticmethod
    def _completed(day: dt.date, now: dt.datetime, details: ContractDetails | None) -> bool:
        """A bar is complete once its session has closed (by the contract's trading hours)."""
        if details is not None and details.tradingHours and details.timeZoneId:
            try:
                sessions = details.tradingSessions()
            except Exception:  # noqa: BLE001 - malformed hours: fall back on the date rule
                sessions = []
            for s in sessions:
                end = s.end if s.end.tzinfo else s.end.replace(tzinfo=ZoneInfo(details.timeZoneId))
                if end.date() == day:
                    return now >= end
        return day < now.date()

    async def _request(self, contract: Contract, label: str, duration: str) -> list[BarData]:
        ib = self._ib
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return list(
                    await ib.reqHistoricalDataAsync(
                        contract, endDateTime="", durationStr=duration, barSizeSetting="1 day",
                        whatToShow="TRADES", useRTH=False, formatDate=1, timeout=self._timeout,
                    )
                )
            except RequestError as exc:
                if exc.code == 162 and attempt < self._retries:
                    log.warning("broker.bars_pacing_backoff", contract=label, retry_in_s=delay, attempt=attempt + 1)
                    await self._sleep(delay)
                    delay *= 2
                    continue
                if exc.code == 162:
                    raise PacingViolation(f"history for {label}: pacing violation persisted after {attempt} retries", code=162) from exc
                if exc.code == 200:
                    raise ContractNotFound(f"history for {label}: {exc.message} (IB 200)", code=200) from exc
                raise BrokerError(f"history for {label}: {exc.message} (IB {exc.code})", code=exc.code) from exc
            except ConnectionError as exc:
                raise NotConnected(f"history for {label}: {exc}") from exc
        raise PacingViolation(f"history for {label}: pacing", code=162)  # pragma: no cover
