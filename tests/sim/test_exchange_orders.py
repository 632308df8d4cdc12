"""Orders end to end with the real ib_async client: fills, partial fills, rejects, cancels,
modifications, DAY expiry, open orders across clients, and executions replayed on reconnect."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from ib_async import Future, LimitOrder, MarketOrder

pytestmark = pytest.mark.timeout(60)
H = dt.timedelta(hours=1)


async def front(ib, symbol: str):
    details = await ib.reqContractDetailsAsync(Future(symbol))
    return details[0].contract, details[0]


@pytest.mark.parametrize("version", [157, 178])
async def test_market_order_fills_with_commission_and_position(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c, _ = await front(ib, "CL")
    commissions: list = []
    ib.commissionReportEvent += lambda trade, fill, report: commissions.append(report)
    trade = ib.placeOrder(c, MarketOrder("BUY", 2, orderRef="hydra-mkt-1"))
    await until(lambda: trade.orderStatus.status == "Submitted", what="ack")
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=10))
    await until(lambda: trade.isDone() and len(commissions) == len(trade.fills), what="fill")
    assert trade.orderStatus.status == "Filled" and trade.orderStatus.filled == 2
    fills = trade.fills
    assert fills and sum(f.execution.shares for f in fills) == 2
    assert all(f.execution.orderRef == "hydra-mkt-1" and f.execution.side == "BOT" for f in fills)
    assert len({f.execution.execId for f in fills}) == len(fills)
    assert all(r.commission > 0 for r in commissions)
    avg = trade.orderStatus.avgFillPrice
    [pos] = await ib.reqPositionsAsync()
    assert pos.position == 2 and pos.avgCost == pytest.approx(avg * 1000)
    assert ex.positions()[c.conId].qty == 2
    await until(lambda: any(p.position == 2 for p in ib.portfolio()), what="portfolio update")
    values = ex.account_values()
    assert values["TotalCashValue"] == pytest.approx(1_000_000 - sum(r.commission for r in commissions))
    assert values["GrossPositionValue"] == 0.0  # IB leaves futures out of it
    assert values["InitMarginReq"] > 0


@pytest.mark.parametrize("version", [157, 178])
async def test_limit_order_fills_in_parts(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c, details = await front(ib, "ZR")
    [tk] = await ib.reqTickersAsync(c)
    limit = round((tk.ask + 10 * details.minTick) / details.minTick) * details.minTick
    trade = ib.placeOrder(c, LimitOrder("BUY", 30, round(limit, 3), orderRef="hydra-part"))
    await until(lambda: trade.orderStatus.status == "Submitted", what="ack")
    await ex.advance_to(ex.clock.now() + 2 * H)
    await until(lambda: trade.orderStatus.filled > 0, what="first partial fill")
    first = trade.orderStatus.filled
    assert 0 < first < 30 and trade.orderStatus.status == "Submitted"
    assert trade.orderStatus.remaining == 30 - first
    close = ex.feed.session_at("ZR", ex.clock.now())[1]
    await ex.advance_to(close - dt.timedelta(minutes=1))
    await until(lambda: trade.orderStatus.filled > first, what="more fills")
    assert len(trade.fills) >= 2
    assert len({f.execution.execId for f in trade.fills}) == len(trade.fills)
    assert all(f.execution.price <= limit + 1e-9 for f in trade.fills)
    assert ex.positions()[c.conId].qty == trade.orderStatus.filled


@pytest.mark.parametrize("version", [157, 178])
async def test_rejects_size_and_tick(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c, _ = await front(ib, "CL")
    errors: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
    big = ib.placeOrder(c, LimitOrder("BUY", 501, 50.0))
    off = ib.placeOrder(c, LimitOrder("BUY", 1, 50.005))
    await until(lambda: big.isDone() and off.isDone(), what="rejections")
    assert (big.order.orderId, 201) in errors and (off.order.orderId, 110) in errors
    assert big.orderStatus.status == "Inactive" and off.orderStatus.status == "Cancelled"
    assert "maximum order size" in " ".join(e.message for e in big.log)
    assert ex.open_orders() == []


@pytest.mark.parametrize("version", [157, 178])
async def test_cancel_and_modify(make_exchange, ib_client, until, version: int) -> None:
    exchange = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=exchange)
    assert ib.client.serverVersion() == version
    c, _ = await front(ib, "CL")
    order = LimitOrder("BUY", 1, 20.0, tif="GTC")
    trade = ib.placeOrder(c, order)
    await until(lambda: trade.orderStatus.status == "Submitted", what="ack")
    order.lmtPrice = 21.0
    ib.placeOrder(c, order)
    await until(lambda: exchange.open_orders()[0].lmt_price == 21.0, what="modification")
    await until(lambda: trade.order.lmtPrice == 21.0, what="modification echoed")
    ib.cancelOrder(order)
    await until(lambda: trade.orderStatus.status == "Cancelled", what="cancel")
    assert exchange.open_orders() == []
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    ib.client.cancelOrder(order.orderId)  # second cancel: already cancelled
    await until(lambda: errors, what="10148")
    assert errors == [10148]


async def test_presubmitted_outside_session_then_day_expiry(exchange, ib_client, until) -> None:
    ib = await ib_client()
    c, _ = await front(ib, "LBR")  # lumber trades 15:00-21:05 UTC; the clock is at 12:00 UTC
    now = exchange.clock.now()
    assert exchange.feed.session_at("LBR", now) is None
    trade = ib.placeOrder(c, LimitOrder("BUY", 1, 100.0))  # far below the market: never fills
    await until(lambda: trade.orderStatus.status == "PreSubmitted", what="PreSubmitted")
    open_, close = exchange.feed.current_or_next_session("LBR", now)
    await exchange.advance_to(open_ + dt.timedelta(minutes=5))
    await until(lambda: trade.orderStatus.status == "Submitted", what="Submitted at the open")
    await exchange.advance_to(close + dt.timedelta(minutes=1))
    await until(lambda: trade.orderStatus.status == "Cancelled", what="DAY expiry")
    assert trade.orderStatus.filled == 0


async def test_all_open_orders_across_clients(exchange, ib_client, until) -> None:
    a = await ib_client(client_id=1)
    b = await ib_client(client_id=2)
    c, _ = await front(a, "CL")
    ta = a.placeOrder(c, LimitOrder("BUY", 1, 20.0, tif="GTC", orderRef="from-a"))
    await until(lambda: ta.orderStatus.status == "Submitted", what="ack")
    mine = await b.reqOpenOrdersAsync()
    assert mine == []
    everyone = await b.reqAllOpenOrdersAsync()
    assert [(t.order.clientId, t.order.orderRef) for t in everyone] == [(1, "from-a")]


async def test_reconnect_after_restart_replays_only_todays_executions(exchange, ib_client, until) -> None:
    ib = await ib_client(client_id=4)
    c, _ = await front(ib, "CL")
    t1 = ib.placeOrder(c, MarketOrder("BUY", 1, orderRef="day1"))
    await until(lambda: t1.orderStatus.status == "Submitted", what="ack")
    await exchange.advance_to(exchange.clock.now() + dt.timedelta(minutes=5))
    await until(lambda: t1.isDone(), what="day-1 fill")
    day2 = (exchange.clock.now() + dt.timedelta(days=1)).replace(hour=15)
    await exchange.advance_to(day2)
    t2 = ib.placeOrder(c, MarketOrder("SELL", 1, orderRef="day2"))
    await until(lambda: t2.orderStatus.status == "Submitted", what="ack")
    await exchange.advance_to(day2 + dt.timedelta(minutes=5))
    await until(lambda: t2.isDone(), what="day-2 fill")
    day2_ids = {f.execution.execId for f in t2.fills}
    lost = asyncio.Event()
    ib.disconnectedEvent += lambda: lost.set()
    restart = asyncio.create_task(exchange.restart(0.3))
    await asyncio.wait_for(lost.wait(), 5)
    assert not ib.isConnected()
    with pytest.raises((ConnectionRefusedError, OSError, asyncio.TimeoutError, ConnectionError)):
        await ib_client(client_id=4, timeout=1)
    await asyncio.wait_for(restart, 5)
    again = await ib_client(client_id=4)
    replayed = {f.execution.execId: f for f in again.fills()}
    assert set(replayed) == day2_ids
    assert all(f.execution.orderRef == "day2" for f in replayed.values())
    assert all(f.commissionReport.commission > 0 for f in replayed.values())
    assert await again.reqPositionsAsync() == []
    completed = [(t.order.orderRef, t.orderStatus.status) for t in again.trades()]
    assert completed == [("day2", "Filled")]  # reqCompletedOrders at connect: today's only


async def test_gtc_order_waits_presubmitted_between_sessions(exchange, ib_client, until) -> None:
    ib = await ib_client()
    c, _ = await front(ib, "CL")
    trade = ib.placeOrder(c, LimitOrder("BUY", 1, 20.0, tif="GTC"))
    await until(lambda: trade.orderStatus.status == "Submitted")
    _, close = exchange.feed.session_at("CL", exchange.clock.now())
    await exchange.advance_to(close + dt.timedelta(minutes=30))
    await until(lambda: trade.orderStatus.status == "PreSubmitted", what="PreSubmitted after the close")
    await exchange.advance_to(close + 2 * H)
    await until(lambda: trade.orderStatus.status == "Submitted", what="Submitted at the next open")


async def test_fixed_speed_clock_plays_by_itself(make_exchange, ib_client, sim_universe, until) -> None:
    from hydra_engine.sim.clock import SimClock

    clock = SimClock.fixed_speed(sim_universe.default_clock_start(), 600.0)  # 10 simulated minutes per second
    ex = await make_exchange(clock=clock)
    ib = await ib_client(ex=ex)
    c, _ = await front(ib, "CL")
    trade = ib.placeOrder(c, MarketOrder("BUY", 1))
    await until(lambda: trade.isDone(), timeout=15, what="fill without advance_to")
    assert trade.orderStatus.status == "Filled"
    assert trade.fills[0].execution.time >= sim_universe.default_clock_start()


async def test_global_cancel_and_summary_pushed_after_a_fill(exchange, ib_client, until) -> None:
    a = await ib_client(client_id=1)
    b = await ib_client(client_id=2)
    c, _ = await front(a, "CL")
    ta = a.placeOrder(c, LimitOrder("BUY", 1, 20.0, tif="GTC"))
    tb = b.placeOrder(c, LimitOrder("SELL", 1, 99.0, tif="GTC"))
    await until(lambda: ta.orderStatus.status == tb.orderStatus.status == "Submitted")
    b.reqGlobalCancel()
    await until(lambda: ta.orderStatus.status == tb.orderStatus.status == "Cancelled", what="global cancel")
    await a.accountSummaryAsync()  # subscribes: later changes are pushed
    def margin() -> str:
        return {v.tag: v.value for v in a.wrapper.acctSummary.values()}["InitMarginReq"]

    before = margin()
    t = a.placeOrder(c, MarketOrder("BUY", 1))
    await until(lambda: t.orderStatus.status == "Submitted")
    await exchange.advance_to(exchange.clock.now() + dt.timedelta(minutes=5))
    await until(lambda: margin() != before, what="summary update")
    assert float(before) == 0.0 and float(margin()) > 0


async def test_orders_for_a_second_account(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(accounts=("DU1111111", "DU2222222"), starting_cash=250_000.0)
    ib = await ib_client(ex=ex)
    assert ib.managedAccounts() == ["DU1111111", "DU2222222"]
    c, _ = await front(ib, "CL")
    t = ib.placeOrder(c, MarketOrder("SELL", 1, account="DU2222222"))
    bad = ib.placeOrder(c, MarketOrder("SELL", 1, account="U999"))
    await until(lambda: t.orderStatus.status == "Submitted" and bad.isDone())
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=5))
    await until(lambda: t.isDone())
    assert ex.positions("DU2222222")[c.conId].qty == -1 and ex.positions("DU1111111") == {}
    assert ex.account_values("DU1111111")["NetLiquidation"] == 250_000.0
    assert any("not managed" in e.message for e in bad.log)


async def test_same_seed_same_orders_same_fills(make_exchange, ib_client, until) -> None:
    async def run(client_id: int) -> list[tuple]:
        ex = await make_exchange()
        ib = await ib_client(client_id=client_id, ex=ex)
        c, _ = await front(ib, "ZO")
        t = ib.placeOrder(c, MarketOrder("BUY", 40))
        await until(lambda: t.orderStatus.status == "Submitted")
        for _ in range(1, 4):
            await ex.advance_to(ex.clock.now() + 2 * H)
        await until(lambda: len(t.fills) == len(ex.executions_today()))
        await ex.stop()
        return [(e.time, e.qty, e.price) for e in ex.executions_today()]

    first, second = await run(21), await run(22)
    assert first and first == second


async def test_advance_right_after_place_books_the_order_first(exchange, ib_client, until) -> None:
    """Same event loop, lock-step: an order written just before advance_to is played in that step."""
    ib = await ib_client()
    c, _ = await front(ib, "CL")
    trade = ib.placeOrder(c, MarketOrder("BUY", 1))
    await exchange.advance_to(exchange.clock.now() + dt.timedelta(minutes=5))
    await until(lambda: trade.isDone(), what="fill in the same step")
    assert trade.orderStatus.status == "Filled"
