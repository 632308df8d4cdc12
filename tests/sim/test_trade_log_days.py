"""Executions replayed to a reconnecting client: today's by default (IB Gateway's default), the last
N New York days with ``trade_log_days`` (its trade-log setting), so an engine down across midnight
still finds the fills it missed."""

from __future__ import annotations

import datetime as dt

import pytest
from ib_async import Future, MarketOrder


@pytest.mark.parametrize("days, replayed", [(1, 0), (2, 1)])
async def test_yesterdays_fill_is_replayed_only_within_the_trade_log(make_exchange, ib_client, until, days,
                                                                     replayed) -> None:
    ex = await make_exchange(trade_log_days=days)
    ib = await ib_client(client_id=5, ex=ex)
    c = (await ib.reqContractDetailsAsync(Future("CL")))[0].contract
    trade = ib.placeOrder(c, MarketOrder("BUY", 1, orderRef="yesterday"))
    await until(lambda: trade.orderStatus.status == "Submitted")
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=5))
    await until(lambda: trade.isDone())
    ib.disconnect()
    await ex.advance_to(ex.clock.now() + dt.timedelta(days=1))
    again = await ib_client(client_id=5, ex=ex)
    fills = await again.reqExecutionsAsync()
    assert len([f for f in fills if f.execution.orderRef == "yesterday"]) == replayed


async def test_trade_log_days_outside_one_to_seven_is_refused(make_exchange) -> None:
    with pytest.raises(ValueError, match="trade_log_days 8 outside 1..7"):
        await make_exchange(trade_log_days=8)
