"""Quotes and daily bars for the gateway (split out of gateway.py to keep each module small).

Quotes are one-shot snapshots flagged live or delayed (market data type 1 or 3). Daily bars are
completed sessions only and incremental: pass the last stored bar's date as ``since``. A pacing
violation (IB 162) backs off on the engine clock and retries, then raises ``PacingViolation``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from ib_async import Contract, RequestError

from hydra_engine.broker.contracts import ContractMonth, MarketLike
from hydra_engine.broker.errors import BrokerError, ContractNotFound, NotConnected, PacingViolation, StateUnknown
from hydra_engine.broker.records import AccountSnapshot, BarRecord, QuoteSnapshot

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
    """Snapshot quotes through ``reqTickersAsync`` (ends on TICK_SNAPSHOT_END, bounded by a timeout)."""

    def __init__(self, gateway: "BrokerGateway") -> None:
        self._gw = gateway

    async def snapshot(self, month: ContractMonth, timeout_s: float) -> QuoteSnapshot:
        ib = self._gw.ib
        try:
            tickers = await asyncio.wait_for(ib.reqTickersAsync(month.contract), timeout_s)
        except RequestError as exc:
            raise BrokerError(f"quote {month.local_symbol}: {exc.message} (IB {exc.code})", code=exc.code) from exc
        except asyncio.TimeoutError as exc:
            raise BrokerError(f"quote {month.local_symbol}: no snapshot within {timeout_s:.1f}s") from exc
        except ConnectionError as exc:
            raise NotConnected(f"quote {month.local_symbol}: {exc}") from exc
        t = tickers[0]
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
        self, target: ContractMonth | MarketLike, *, since: dt.date | None, lookback_days: int
    ) -> list[BarRecord]:
        if isinstance(target, ContractMonth):
            contract = target.contract
            label = target.local_symbol
            details = target.details
        else:
            contract = Contract(
                secType="CONTFUT", symbol=target.symbol, exchange=target.exchange, currency=target.currency
            )
            label = f"{target.symbol} CONTFUT"
            details = None
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
