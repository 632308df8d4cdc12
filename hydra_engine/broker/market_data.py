"""Account, positions, contracts, quotes and daily bars: the gateway's read-only requests.

Quotes are one-shot snapshots flagged live or delayed (market data type 1 or 3). Daily bars are
completed sessions only and incremental: pass the last stored bar's date as ``since``. A pacing
violation (IB 162) backs off on the engine clock and retries, then raises ``PacingViolation``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable
from zoneinfo import ZoneInfo

import structlog
from ib_async import Contract, RequestError

from hydra_engine.broker.contracts import (
    ContractMonth,
    MarketLike,
    ResolvedContract,
    month_from_details,
    select_active_month,
    trading_days_between,
)
from hydra_engine.broker.errors import BrokerError, ContractNotFound, NotConnected, PacingViolation, StateUnknown
from hydra_engine.broker.records import AccountSnapshot, BarRecord, PositionSnapshot, QuoteSnapshot

if TYPE_CHECKING:
    from hydra_engine.broker.gateway import BrokerGateway

log = structlog.get_logger(__name__)

DELAYED_TYPES = frozenset({3, 4})


def parse_account_summary(values: Any, account: str, at: dt.datetime) -> AccountSnapshot:
    """Account-summary rows to a snapshot (base-currency rows win over per-currency ones)."""
    tags: dict[str, tuple[float, str]] = {}
    for v in values:
        if v.currency in ("", "BASE") and v.tag in tags:
            continue
        try:
            tags[v.tag] = (float(v.value), v.currency)
        except ValueError:
            continue
    if "NetLiquidation" not in tags:
        raise StateUnknown(f"account summary for {account} has no NetLiquidation")
    return AccountSnapshot(
        account=account,
        currency=tags["NetLiquidation"][1],
        net_liquidation=tags["NetLiquidation"][0],
        total_cash=tags.get("TotalCashValue", (math.nan, ""))[0],
        gross_position_value=tags.get("GrossPositionValue", (0.0, ""))[0],
        available_funds=tags.get("AvailableFunds", (math.nan, ""))[0],
        at=at,
    )


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


class QuoteFetcher:
    """Quotes from one streaming subscription per month, kept while the session lives.

    A snapshot request can take IB ~11 s to end; a subscription's first ticks come at once and
    later reads cost one round trip: a ``reqCurrentTime`` barrier, after which every tick the
    gateway sent before it has been applied (so a lock-step run reads the book as of its clock).
    Subscriptions die with the session and after 1101 (data lost); ``resubscribe`` renews them.
    """

    def __init__(self, gateway: "BrokerGateway") -> None:
        self._gw = gateway
        self._tickers: dict[int, tuple[Any, Any]] = {}
        """conId -> (ib_async Ticker, Contract)."""

    def reset(self) -> None:
        """The session is gone: ib_async dropped every ticker."""
        self._tickers.clear()

    def resubscribe(self) -> None:
        """After 1101 (market data lost): request every subscription again."""
        ib = self._gw.ib
        for con_id, (ticker, contract) in list(self._tickers.items()):
            try:
                ib.cancelMktData(contract)
            except Exception:  # noqa: BLE001 - already gone at the gateway
                pass
            self._tickers[con_id] = (ib.reqMktData(contract, "", False, False), contract)
        if self._tickers:
            log.info("broker.quotes_resubscribed", n=len(self._tickers))

    async def snapshot(self, month: ContractMonth, timeout_s: float) -> QuoteSnapshot:
        ib = self._gw.ib
        entry = self._tickers.get(month.con_id)
        try:
            if entry is None:
                ticker = ib.reqMktData(month.contract, "", False, False)
                self._tickers[month.con_id] = (ticker, month.contract)
            else:
                ticker = entry[0]
                await self._gw.barrier(timeout_s)  # every tick sent before now has been applied
            await self._two_sided(ticker, timeout_s)
        except RequestError as exc:
            self._tickers.pop(month.con_id, None)
            raise BrokerError(f"quote {month.local_symbol}: {exc.message} (IB {exc.code})", code=exc.code) from exc
        except asyncio.TimeoutError as exc:
            self._tickers.pop(month.con_id, None)
            raise BrokerError(f"quote {month.local_symbol}: no two-sided market within {timeout_s:.1f}s") from exc
        except ConnectionError as exc:
            self._tickers.pop(month.con_id, None)
            raise NotConnected(f"quote {month.local_symbol}: {exc}") from exc
        t = ticker
        if not (_finite(t.bid) and _finite(t.ask)) or t.ask < t.bid:
            raise BrokerError(f"quote {month.local_symbol}: no two-sided market (bid={t.bid}, ask={t.ask})")
        md_type = int(t.marketDataType or self._gw.market_data_type)
        last = float(t.last) if _finite(t.last) else None
        return QuoteSnapshot(
            con_id=month.con_id,
            symbol=month.symbol,
            bid=float(t.bid),
            ask=float(t.ask),
            last=last,
            at=self._gw.now(),
            data_type="delayed" if md_type in DELAYED_TYPES else "live",
            min_tick=month.min_tick or None,
        )

    async def _two_sided(self, ticker: Any, timeout_s: float) -> None:
        """Wait (event-driven) until the ticker holds a bid and an ask."""
        if _finite(ticker.bid) and _finite(ticker.ask):
            return
        ready = asyncio.Event()

        def on_update(t: Any) -> None:
            if _finite(t.bid) and _finite(t.ask):
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


def _bar_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value)
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


class BarFetcher:
    """Completed daily bars, incremental, with pacing back-off."""

    def __init__(self, gateway: "BrokerGateway", *, retries: int, backoff_s: float) -> None:
        self._gw = gateway
        self._retries = retries
        self._backoff = backoff_s

    async def daily(
        self,
        target: ContractMonth | MarketLike,
        *,
        since: dt.date | None,
        lookback_days: int,
        hours: Any = None,
    ) -> list[BarRecord]:
        """``hours``: contract details whose trading hours decide completeness for a CONTFUT
        request (which has none of its own): the front month's, as the gateway resolves them."""
        if isinstance(target, ContractMonth):
            contract = target.contract
            label = target.local_symbol
            details = target.details
        else:
            contract = Contract(
                secType="CONTFUT", symbol=target.symbol, exchange=target.exchange, currency=target.currency
            )
            label = f"{target.symbol} CONTFUT"
            details = hours
        now = self._gw.now()
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
    def _completed(day: dt.date, now: dt.datetime, details: Any) -> bool:
        """A bar is complete once its session has closed (by the contract's trading hours)."""
        if details is not None and getattr(details, "tradingHours", "") and getattr(details, "timeZoneId", ""):
            try:
                sessions = details.tradingSessions()
            except Exception:  # noqa: BLE001 - malformed hours: fall back on the date rule
                sessions = []
            for s in sessions:
                end = s.end if s.end.tzinfo else s.end.replace(tzinfo=ZoneInfo(details.timeZoneId))
                if end.date() == day:
                    return now >= end
        return day < now.date()

    async def _request(self, contract: Any, label: str, duration: str) -> list[Any]:
        ib = self._gw.ib
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return list(
                    await ib.reqHistoricalDataAsync(
                        contract, endDateTime="", durationStr=duration, barSizeSetting="1 day",
                        whatToShow="TRADES", useRTH=False, formatDate=1, timeout=self._gw._request_timeout,
                    )
                )
            except RequestError as exc:
                if exc.code == 162 and attempt < self._retries:
                    log.warning("broker.bars_pacing_backoff", contract=label, retry_in_s=delay, attempt=attempt + 1)
                    await self._gw.sleep_backoff(delay)
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


class AccountDataMixin:
    """Account, positions, contracts, quotes and bars: the read-only half of ``BrokerGateway``."""

    ib: Any
    account: str
    _request_timeout: float
    _contracts: dict[int, ContractMonth]
    _quotes: QuoteFetcher
    _bars: BarFetcher
    _positions_lock: asyncio.Lock
    """ib_async keeps ONE positions request (a second concurrent one orphans the first's future)."""
    _summary_lock: asyncio.Lock
    """One account-summary load at a time (IB also caps concurrent summary subscriptions)."""
    host: str
    port: int

    now: Callable[[], dt.datetime]
    """The engine clock's time (BrokerGateway.now)."""

    def _require_session(self) -> None:
        if not self.ib.isConnected():
            raise NotConnected(f"not connected to {self.host}:{self.port}")

    async def get_account_summary(
        self,
        *,
        equity: Any = None,
        trading_date: dt.date | None = None,
        is_trading_day: Callable[[dt.date], bool] | None = None,
    ) -> AccountSnapshot:
        """Net liquidation, cash and position value; daily P&L and peak from our own marks.

        IB has no DailyPnL tag: with ``equity`` (the store's equity repository) daily P&L is net
        liquidation minus the previous trading date's closing mark (flagged stale when that mark
        is more than one trading day old) and the peak is the persisted peak raised to now.
        """
        snap = await self._account_summary()
        if equity is None:
            return snap
        day = trading_date or self.now().date()
        prev = await equity.previous_mark(day)
        peak_rec = await equity.peak()
        daily_pnl = None
        stale = False
        if prev is not None:
            daily_pnl = snap.net_liquidation - prev.net_liquidation
            stale = trading_days_between(prev.trading_date, day, is_trading_day) > 1
        peak = max(peak_rec.peak, snap.net_liquidation) if peak_rec is not None else snap.net_liquidation
        return replace(snap, daily_pnl=daily_pnl, peak_equity=peak, daily_pnl_stale=stale)

    async def _ask(self, request: Any, what: str) -> Any:
        """Await one request: a dropped session is NotConnected, silence a BrokerError (not "none")."""
        try:
            return await asyncio.wait_for(request, self._request_timeout)
        except ConnectionError as exc:
            raise NotConnected(f"{what}: {exc}") from exc
        except asyncio.TimeoutError as exc:
            raise BrokerError(f"{what}: no answer within {self._request_timeout:.1f}s") from exc

    async def _account_summary(self) -> AccountSnapshot:
        async with self._summary_lock:
            self._require_session()
            values = await self._ask(self.ib.accountSummaryAsync(self.account), "account summary")
        return parse_account_summary(values, self.account, self.now())

    async def get_positions(self) -> list[PositionSnapshot]:
        """Futures positions (non-zero) in the traded account; safe for concurrent callers."""
        async with self._positions_lock:
            self._require_session()
            positions = await self._ask(self.ib.reqPositionsAsync(), "positions")
        out: list[PositionSnapshot] = []
        for p in positions:
            c = p.contract
            if self.account and p.account != self.account or not p.position:
                continue
            out.append(
                PositionSnapshot(
                    account=p.account, con_id=int(c.conId), symbol=c.symbol, local_symbol=c.localSymbol,
                    contract_month=(c.lastTradeDateOrContractMonth or "")[:6], quantity=float(p.position),
                    avg_cost=float(p.avgCost), multiplier=float(c.multiplier or 1.0),
                )
            )
        return out

    def portfolio_mark(self, con_id: int) -> float | None:
        """The broker's own mark of a held contract (price units, from the account updates ib_async
        keeps); None when it has none."""
        for item in self.ib.portfolio(self.account):
            if int(item.contract.conId) == int(con_id) and _finite(item.marketPrice):
                return float(item.marketPrice)
        return None

    # ----------------------------------------------------------------- contracts and data

    async def contract_months(self, market: MarketLike) -> list[ContractMonth]:
        """Every listed month of ``market`` from the contract details."""
        self._require_session()
        probe = Contract(secType="FUT", symbol=market.symbol, exchange=market.exchange, currency=market.currency)
        try:
            details = await self._ask(self.ib.reqContractDetailsAsync(probe), f"contract details {market.symbol}")
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
            self._contracts[m.con_id] = m
        return months

    async def resolve_contract(self, market: MarketLike, as_of: dt.date | None = None) -> ResolvedContract:
        """The month to hold now (front month, or the next one inside the roll window)."""
        months = await self.contract_months(market)
        day = as_of or self.now().date()
        calendar = None
        try:
            from hydra_engine.markets import MarketConfig, is_trading_day

            if isinstance(market, MarketConfig):
                calendar = lambda d: is_trading_day(market, d)  # noqa: E731
        except ImportError:  # pragma: no cover
            pass
        return select_active_month(market.symbol, months, day, int(market.roll_days), calendar)

    def known_month(self, con_id: int) -> ContractMonth | None:
        return self._contracts.get(con_id)

    async def get_quote(self, month: ContractMonth, timeout_s: float | None = None) -> QuoteSnapshot:
        """Snapshot of bid/ask (mid and spread), flagged live or delayed."""
        self._require_session()
        return await self._quotes.snapshot(month, timeout_s or self._request_timeout)

    async def get_daily_bars(
        self,
        target: ContractMonth | MarketLike,
        *,
        since: dt.date | None = None,
        lookback_days: int = 365,
    ) -> list[BarRecord]:
        """Completed daily bars after ``since`` (incremental); a market gives CONTFUT history.

        A bar is complete once its session closed by the contract's trading hours; CONTFUT has no
        contract details, so the front month's hours decide (a session that closed just before the
        decision time is today's bar, not tomorrow's)."""
        self._require_session()
        hours = None if isinstance(target, ContractMonth) else await self._front_hours(target)
        return await self._bars.daily(target, since=since, lookback_days=lookback_days, hours=hours)

    async def _front_hours(self, market: MarketLike) -> Any:
        """The nearest unexpired month's contract details (trading hours), freshly requested: the
        hours text covers only the days from when it was sent. None (date rule) when unavailable."""
        try:
            months = await self.contract_months(market)
        except BrokerError as exc:
            log.warning("broker.bars_hours_unavailable", market=market.symbol, error=str(exc))
            return None
        today = self.now().date()
        live = [m for m in months if m.last_trade_date >= today and m.details is not None]
        if not live:
            return None
        return min(live, key=lambda m: (m.last_trade_date, m.con_id)).details

