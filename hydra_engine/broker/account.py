"""AccountReader: account summary, positions and the broker's own marks, read from one session.

IB has no DailyPnL tag, so the summary carries only what the gateway reports; the engine computes
daily P&L from its own closing marks in one place (``execution/account_view.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Iterable

from ib_async import AccountValue

from hydra_engine.broker.channel import RequestChannel
from hydra_engine.broker.errors import StateUnknown
from hydra_engine.broker.records import AccountSnapshot, PositionSnapshot


def parse_account_summary(values: Iterable[AccountValue], account: str, at: dt.datetime) -> AccountSnapshot:
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


def finite_price(x: object) -> bool:
    """A usable price: a finite number above zero (IB sends -1 and NaN for "none")."""
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


class AccountReader:
    """Summary, positions and portfolio marks of the traded account."""

    def __init__(
        self,
        channel: RequestChannel,
        *,
        account: Callable[[], str],
        now: Callable[[], dt.datetime],
        positions_lock: asyncio.Lock,
    ) -> None:
        """``account``: the traded account as of the call (known once connected); ``positions_lock``:
        shared with the reconciliation, since ib_async keeps ONE positions request (a second
        concurrent one orphans the first's future)."""
        self._channel = channel
        self._account = account
        self._now = now
        self._positions_lock = positions_lock
        self._summary_lock = asyncio.Lock()
        """One account-summary load at a time (IB also caps concurrent summary subscriptions)."""

    async def summary(self) -> AccountSnapshot:
        """Net liquidation, cash and position value as the gateway reports them (no daily P&L)."""
        ch = self._channel
        async with self._summary_lock:
            ch.require_session()
            account = self._account()
            values = await ch.ask(ch.ib.accountSummaryAsync(account), "account summary")
        return parse_account_summary(values, account, self._now())

    async def positions(self) -> list[PositionSnapshot]:
        """Futures positions (non-zero) in the traded account; safe for concurrent callers."""
        ch = self._channel
        async with self._positions_lock:
            ch.require_session()
            positions = await ch.ask(ch.ib.reqPositionsAsync(), "positions")
        account = self._account()
        out: list[PositionSnapshot] = []
        for p in positions:
            c = p.contract
            if account and p.account != account or not p.position:
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
        for item in self._channel.ib.portfolio(self._account()):
            if int(item.contract.conId) == int(con_id) and finite_price(item.marketPrice):
                return float(item.marketPrice)
        return None
