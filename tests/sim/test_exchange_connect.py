"""Session, reference data and market data with the real ib_async client at 157 and 178."""

from __future__ import annotations

import asyncio
import time

import pytest
from ib_async import ContFuture, Future, LimitOrder

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("version", [157, 178])
async def test_connect_account_positions(make_exchange, ib_client, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    t0 = time.perf_counter()
    ib = await ib_client(client_id=7, ex=ex)
    assert time.perf_counter() - t0 < 1.0
    assert ib.client.serverVersion() == version
    assert ib.managedAccounts() == ["DU1234567"]
    values = {v.tag: v.value for v in ib.accountValues()}
    assert float(values["NetLiquidation"]) == 1_000_000.0
    summary = {v.tag: float(v.value) for v in await ib.accountSummaryAsync()}
    for tag in ("NetLiquidation", "TotalCashValue", "GrossPositionValue", "AvailableFunds"):
        assert tag in summary
    assert summary["TotalCashValue"] == 1_000_000.0 and summary["GrossPositionValue"] == 0.0
    assert await ib.reqPositionsAsync() == []
    assert ex.clients == [7]


async def test_current_time_is_the_simulated_clock(exchange, ib_client) -> None:
    ib = await ib_client()
    t = await ib.reqCurrentTimeAsync()
    assert t == exchange.clock.now().replace(microsecond=0)


async def test_contract_details_and_qualify_front_month(exchange, ib_client) -> None:
    ib = await ib_client()
    details = await ib.reqContractDetailsAsync(Future("CL", exchange="NYMEX"))
    assert len(details) >= 3
    front = details[0]
    c = front.contract
    assert (c.symbol, c.secType, c.multiplier, c.exchange, c.currency) == ("CL", "FUT", "1000", "NYMEX", "USD")
    assert c.conId > 0 and c.localSymbol.startswith("CL")
    assert front.minTick == 0.01 and front.timeZoneId == "US/Central"
    assert front.tradingHours and front.liquidHours and front.realExpirationDate
    assert ":1700-" in front.tradingHours and front.liquidHours != front.tradingHours
    assert len(c.lastTradeDateOrContractMonth) == 8 and front.realExpirationDate >= c.lastTradeDateOrContractMonth
    assert front.contractMonth > c.lastTradeDateOrContractMonth[:6]  # CL stops trading the month before delivery
    expiries = [d.contract.lastTradeDateOrContractMonth for d in details]
    assert expiries == sorted(expiries)  # front month first
    today = exchange.clock.now().strftime("%Y%m%d")
    assert expiries[0] >= today
    [q] = await ib.qualifyContractsAsync(Future("CL", front.contractMonth, "NYMEX"))
    assert q is not None and q.conId == c.conId and q.localSymbol == c.localSymbol
    [by_local] = await ib.qualifyContractsAsync(Future(localSymbol=c.localSymbol, exchange="NYMEX"))
    assert by_local is not None and by_local.conId == c.conId


async def test_unknown_contract_is_error_200(exchange, ib_client) -> None:
    ib = await ib_client()
    errors: list[tuple] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code, msg, contract))
    assert await ib.reqContractDetailsAsync(Future("XYZ", exchange="NYMEX")) == []
    [result] = await ib.qualifyContractsAsync(Future("CL", "209912", "NYMEX"))
    assert result is None
    codes = [e[1] for e in errors]
    assert codes == [200, 200]
    assert "No security definition" in errors[0][2]
    assert errors[0][0] > 0 and errors[0][3].symbol == "XYZ"  # ib_async ties it to the request


async def test_daily_bars_only_completed_sessions(exchange, ib_client) -> None:
    ib = await ib_client()
    [c] = await ib.qualifyContractsAsync(Future("CL", exchange="NYMEX", lastTradeDateOrContractMonth=""), returnAll=True)
    front = c[0] if isinstance(c, list) else c
    bars = await ib.reqHistoricalDataAsync(front, "", "20 D", "1 day", "TRADES", True)
    assert len(bars) == 20
    now = exchange.clock.now()
    last_completed = exchange.feed.last_completed_day("CL", now)
    assert bars[-1].date == last_completed and bars[-1].date < now.date()  # 12:00 UTC: today's session open
    assert all(b.high >= max(b.open, b.close) and b.low <= min(b.open, b.close) for b in bars)
    year = await ib.reqHistoricalDataAsync(front, "", "1 Y", "1 day", "TRADES", True)
    assert 200 <= len(year) <= 262 and (year[-1].date - year[0].date).days <= 366


async def test_contfut_history_only(exchange, ib_client, until) -> None:
    ib = await ib_client()
    [cf] = await ib.qualifyContractsAsync(ContFuture("CL", "NYMEX"))
    assert cf is not None and cf.secType == "CONTFUT"
    bars = await ib.reqHistoricalDataAsync(cf, "", "1 Y", "1 day", "TRADES", True)
    assert len(bars) > 200
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    trade = ib.placeOrder(cf, LimitOrder("BUY", 1, 50.0))
    await until(lambda: trade.isDone() and errors, what="reject")
    assert errors == [201] and trade.orderStatus.status == "Inactive"


@pytest.mark.parametrize("data_type,bid_tick", [(1, 1), (3, 66)])
async def test_market_data_streaming_and_snapshot(exchange, ib_client, until, data_type: int, bid_tick: int) -> None:
    ib = await ib_client()
    details = await ib.reqContractDetailsAsync(Future("CL", exchange="NYMEX"))
    c = details[0].contract
    ib.reqMarketDataType(data_type)
    ticker = ib.reqMktData(c)
    await until(lambda: ticker.bid > 0 and ticker.ask > 0 and ticker.close > 0, what="first ticks")
    assert ticker.marketDataType == data_type
    assert any(t.tickType == bid_tick for t in ticker.ticks) or ticker.bid > 0
    assert ticker.bid < ticker.ask
    first_bid = ticker.bid
    now = exchange.clock.now()
    expected = exchange.universe.quote(c.conId, now if data_type == 1 else now - __import__("datetime").timedelta(minutes=15))
    assert first_bid == expected.bid
    # streaming: advancing the clock pushes new ticks
    seen = len(ticker.ticks)
    updates: list[int] = []
    ticker.updateEvent += lambda t: updates.append(len(t.ticks))
    await exchange.advance_to(now + __import__("datetime").timedelta(minutes=30))
    await until(lambda: updates, what="a streamed update")
    assert ticker.ticks or seen
    ib.cancelMktData(c)
    # snapshot
    [snap] = await ib.reqTickersAsync(c)
    assert snap.bid > 0 and snap.ask > snap.bid and snap.marketDataType == data_type


async def test_several_clients_and_duplicate_client_id(exchange, ib_client) -> None:
    a = await ib_client(client_id=1)
    b = await ib_client(client_id=2)
    assert exchange.clients == [1, 2]
    with pytest.raises((asyncio.TimeoutError, ConnectionError)):
        await ib_client(client_id=1, timeout=1.5)
    assert a.isConnected() and b.isConnected()
    assert exchange.clients == [1, 2]
    # both still served
    s1, s2 = await asyncio.gather(a.accountSummaryAsync(), b.accountSummaryAsync())
    assert s1 and s2


async def test_duplicate_client_id_gets_326_and_is_closed(exchange, ib_client) -> None:
    import struct

    await ib_client(client_id=3)
    reader, writer = await asyncio.open_connection("127.0.0.1", exchange.port)
    payload = b"v157..178"
    writer.write(b"API\0" + struct.pack(">I", len(payload)) + payload)
    head = await asyncio.wait_for(reader.readexactly(4), 5)
    await reader.readexactly(struct.unpack(">I", head)[0])
    start = b"71\x002\x003\x00\x00"
    writer.write(struct.pack(">I", len(start)) + start)
    head = await asyncio.wait_for(reader.readexactly(4), 5)
    fields = (await reader.readexactly(struct.unpack(">I", head)[0])).decode().split("\0")
    assert fields[:4] == ["4", "2", "-1", "326"]
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the exchange
    writer.close()
    assert exchange.clients == [3]


async def test_quick_reconnect_with_the_same_client_id(exchange, ib_client) -> None:
    for _ in range(3):
        ib = await ib_client(client_id=11)
        assert ib.isConnected()
        ib.disconnect()  # and reconnect at once: the exchange lets the old socket finish closing


async def test_keep_up_to_date_daily_bars_add_the_session_in_progress(exchange, ib_client, until) -> None:
    """Five completed daily bars, then today's session so far as a live update (tests/sim/
    test_market_data_intraday.py follows the stream as the clock moves)."""
    ib = await ib_client()
    c = (await ib.reqContractDetailsAsync(Future("CL")))[0].contract
    bars = await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True, keepUpToDate=True)
    await until(lambda: len(bars) == 6, what="the in-progress daily bar")
    assert bars[-1].date == exchange.feed.trade_date("CL", exchange.clock.now()) > bars[-2].date
    assert (await ib.reqCurrentTimeAsync()) == exchange.clock.now().replace(microsecond=0)
