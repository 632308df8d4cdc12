"""Order types against the embedded exchange with the real ib_async client (server versions 157 and
178) and IB's own ibapi client: each fills at the price the exchange's intraday path gives.

STP / STP LMT trigger on the first print at or through the stop and fill on later prints only
(never at a price already printed, the same however the clock is stepped); MOC / LOC at the
session's last print; TIF OPG at the next session's first print; GTD expires at its time."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from ib_async import Future, LimitOrder, MarketOrder, Order, StopLimitOrder, StopOrder
from order_paths import (
    IbapiClient, expected_after_trigger, first_trigger, next_session, on_grid, rest_of_session, session_of,
)  # fmt: skip

pytestmark = pytest.mark.timeout(60)
M = dt.timedelta(minutes=1)
CL_TICK = 0.01


async def front(ib, symbol: str = "CL"):
    [d, *_] = await ib.reqContractDetailsAsync(Future(symbol))
    return d.contract


def fills(trade) -> list[tuple[dt.datetime, float, float]]:
    return [(f.execution.time, f.execution.price, f.execution.shares) for f in trade.fills]


@pytest.mark.parametrize("version", [157, 178])
async def test_buy_stop_triggers_on_the_path_and_fills_on_a_later_print(make_exchange, ib_client, until,
                                                                        version: int) -> None:  # fmt: skip
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    now = ex.clock.now()
    s = session_of(ex, "CL", c.conId)
    end = s.close - M
    rest = rest_of_session(s, now, end)
    stop = on_grid((rest[0] + max(rest)) / 2, CL_TICK)
    assert rest[0] < stop < max(rest)  # resting: the market is below it now and reaches it later
    trade = ib.placeOrder(c, StopOrder("BUY", 2, stop, tif="GTC"))
    await until(lambda: trade.orderStatus.status == "Submitted", what="stop acknowledged")
    trigger = first_trigger(s, "BUY", stop, now, end)
    await ex.advance_to(trigger - M)
    await asyncio.sleep(0.05)
    assert trade.orderStatus.filled == 0 and trade.order.auxPrice == stop  # nothing before the trigger print
    await ex.advance_to(end)
    await until(lambda: trade.isDone(), what="stop filled")
    expected = expected_after_trigger(ex, c.conId, "BUY", 2, None, trigger, end)
    assert fills(trade) == [(t, p, float(q)) for t, p, q in expected]
    assert all(t > trigger for t, _, _ in fills(trade))  # never the trigger print, never earlier
    assert trade.orderStatus.avgFillPrice == pytest.approx(sum(p * q for _, p, q in expected) / 2)
    assert ex.positions()[c.conId].qty == 2


@pytest.mark.parametrize("version", [157, 178])
async def test_sell_stop_limit_becomes_a_limit_at_its_trigger(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    now = ex.clock.now()
    s = session_of(ex, "CL", c.conId)
    end = s.close - M
    rest = rest_of_session(s, now, end)
    stop = on_grid((rest[0] + min(rest)) / 2, CL_TICK)
    limit = on_grid(stop - 0.05, CL_TICK)
    assert min(rest) < stop < rest[0]
    trade = ib.placeOrder(c, StopLimitOrder("SELL", 1, limit, stop))
    await until(lambda: trade.orderStatus.status == "Submitted", what="ack")
    await ex.advance_to(end)
    trigger = first_trigger(s, "SELL", stop, now, end)
    expected = expected_after_trigger(ex, c.conId, "SELL", 1, limit, trigger, end)
    assert expected, "the path trades at or above the limit after the trigger"
    await until(lambda: trade.isDone(), what="stop limit filled")
    assert fills(trade) == [(t, p, float(q)) for t, p, q in expected]
    assert all(p >= limit for _, p, _ in fills(trade)) and all(t > trigger for t, _, _ in fills(trade))


async def test_stop_fill_is_the_same_however_the_clock_is_stepped(make_exchange, ib_client, until) -> None:
    """No look-ahead: a stop played in one jump or in steps (one ending exactly at its trigger
    print) fills at the same print, price and size."""
    one = await make_exchange()
    steps = await make_exchange()
    ib1, ib2 = await ib_client(ex=one), await ib_client(client_id=2, ex=steps)
    c = await front(ib1)
    now = one.clock.now()
    s = session_of(one, "CL", c.conId)
    end = s.close - M
    rest = rest_of_session(s, now, end)
    stop = on_grid((rest[0] + max(rest)) / 2, CL_TICK)
    t1 = ib1.placeOrder(c, StopOrder("BUY", 3, stop))
    t2 = ib2.placeOrder(c, StopOrder("BUY", 3, stop))
    await until(lambda: t1.orderStatus.status == t2.orderStatus.status == "Submitted", what="acks")
    trigger = first_trigger(s, "BUY", stop, now, end)
    await one.advance_to(end)
    marks = [trigger - dt.timedelta(seconds=1), trigger, trigger + dt.timedelta(seconds=30)]
    marks += [trigger + (end - trigger) * k / 5 for k in range(1, 6)]
    for t in marks:
        await steps.advance_to(t)
    await until(lambda: t1.isDone() and t2.isDone(), what="both filled")
    assert fills(t1) == fills(t2) and fills(t1)
    assert min(t for t, _, _ in fills(t1)) > trigger


@pytest.mark.parametrize("version", [157, 178])
async def test_moc_and_loc_fill_at_the_close(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    s = session_of(ex, "CL", c.conId)
    close_price = float(s.path.price[-1])
    moc = ib.placeOrder(c, Order(action="SELL", totalQuantity=2, orderType="MOC"))
    loc_met = ib.placeOrder(c, Order(action="SELL", totalQuantity=1, orderType="LOC",
                                     lmtPrice=on_grid(close_price - 0.05, CL_TICK)))
    loc_missed = ib.placeOrder(c, Order(action="BUY", totalQuantity=1, orderType="LOC",
                                        lmtPrice=on_grid(close_price - 0.05, CL_TICK)))
    await until(lambda: all(t.orderStatus.status == "Submitted" for t in (moc, loc_met, loc_missed)), what="acks")
    await ex.advance_to(s.close - M)
    await asyncio.sleep(0.05)
    assert not moc.fills and not loc_met.fills  # nothing before the closing auction
    await ex.advance_to(s.close + M)
    await until(lambda: moc.isDone() and loc_met.isDone() and loc_missed.isDone(), what="closing auction")
    assert fills(moc) == [(s.close, close_price, 2.0)]
    assert fills(loc_met) == [(s.close, close_price, 1.0)]  # a sell limit below the close gets the close
    assert loc_missed.orderStatus.status == "Cancelled" and not loc_missed.fills
    assert ex.positions()[c.conId].qty == -3
    [bar] = ex.universe.daily_bars(c.conId, s.day, 1)
    assert (bar.date, bar.close) == (s.day, close_price)  # the closing auction is the daily bar's close


@pytest.mark.parametrize("version", [157, 178])
async def test_opg_fills_at_the_next_open_or_is_cancelled(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    now = ex.clock.now()
    nxt = next_session(ex, "CL", c.conId, now)
    opening = float(nxt.path.price[0])
    moo = ib.placeOrder(c, MarketOrder("BUY", 2, tif="OPG"))
    loo = ib.placeOrder(c, LimitOrder("BUY", 1, on_grid(opening + 0.10, CL_TICK), tif="OPG"))
    loo_missed = ib.placeOrder(c, LimitOrder("SELL", 1, on_grid(opening + 0.10, CL_TICK), tif="OPG"))
    await until(lambda: all(t.orderStatus.status == "PreSubmitted" for t in (moo, loo, loo_missed)),
                what="OPG orders wait for the open")  # fmt: skip
    await ex.advance_to(nxt.open)
    await asyncio.sleep(0.05)
    assert not moo.fills and moo.orderStatus.status == "PreSubmitted"  # still waiting in today's session
    await ex.advance_to(nxt.open + 5 * M)
    await until(lambda: moo.isDone() and loo.isDone() and loo_missed.isDone(), what="opening auction")
    first_print = nxt.path.step_time(0)
    assert fills(moo) == [(first_print, opening, 2.0)]
    assert fills(loo) == [(first_print, opening, 1.0)]  # a buy limit above the open gets the open
    assert loo_missed.orderStatus.status == "Cancelled" and not loo_missed.fills
    await ex.advance_to(nxt.close + M)
    [bar] = ex.universe.daily_bars(c.conId, nxt.day, 1)
    assert bar.open == opening  # the opening auction is the daily bar's open


@pytest.mark.parametrize("version", [157, 178])
async def test_gtd_expires_at_its_time(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    now = ex.clock.now()
    until_t = now + dt.timedelta(hours=2)
    gtd = LimitOrder("BUY", 1, 20.0, tif="GTD", goodTillDate=until_t.strftime("%Y%m%d %H:%M:%S UTC"))
    eastern = LimitOrder("BUY", 1, 20.0, tif="GTD", goodTillDate=(until_t + dt.timedelta(hours=1))
                         .astimezone(dt.timezone(dt.timedelta(hours=-5))).strftime("%Y%m%d %H:%M:%S US/Eastern"))
    t1, t2 = ib.placeOrder(c, gtd), ib.placeOrder(c, eastern)
    await until(lambda: t1.orderStatus.status == t2.orderStatus.status == "Submitted", what="acks")
    assert t1.order.goodTillDate == gtd.goodTillDate
    await ex.advance_to(until_t - M)
    await asyncio.sleep(0.05)
    assert t1.orderStatus.status == "Submitted"
    await ex.advance_to(until_t + M)
    await until(lambda: t1.orderStatus.status == "Cancelled", what="GTD expiry")
    assert t2.orderStatus.status == "Submitted"  # an hour later, in New York time
    [o1] = [o for o in ex.book.orders.values() if o.order_id == t1.order.orderId]
    assert o1.done_at == until_t
    await ex.advance_to(until_t + 61 * M)
    await until(lambda: t2.orderStatus.status == "Cancelled", what="second GTD expiry")


@pytest.mark.parametrize("version", [157, 178])
async def test_bad_type_and_tif_combinations_are_refused(make_exchange, ib_client, until, version: int) -> None:
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    errors: dict[int, list[tuple[int, str]]] = {}
    ib.errorEvent += lambda req_id, code, msg, contract: errors.setdefault(req_id, []).append((code, msg))
    past = (ex.clock.now() - dt.timedelta(hours=1)).strftime("%Y%m%d %H:%M:%S UTC")
    bad = {
        "MOC GTC": Order(action="BUY", totalQuantity=1, orderType="MOC", tif="GTC"),
        "STP no stop": Order(action="BUY", totalQuantity=1, orderType="STP"),
        "GTD no date": LimitOrder("BUY", 1, 20.0, tif="GTD"),
        "GTD past": LimitOrder("BUY", 1, 20.0, tif="GTD", goodTillDate=past),
        "OPG STP": StopOrder("BUY", 1, 99.0, tif="OPG"),
        "TRAIL": Order(action="BUY", totalQuantity=1, orderType="TRAIL", auxPrice=1.0),
    }
    trades = {k: ib.placeOrder(c, o) for k, o in bad.items()}
    off_tick = ib.placeOrder(c, StopOrder("SELL", 1, 40.005))
    await until(lambda: all(t.isDone() for t in (*trades.values(), off_tick)), what="refusals")
    for name, t in trades.items():
        assert t.orderStatus.status == "Inactive", name
        codes = [code for code, _ in errors[t.order.orderId]]
        assert codes == [201], (name, errors[t.order.orderId])
    text = " ".join(m for _, m in errors[trades["MOC GTC"].order.orderId])
    assert "MOC orders are DAY orders" in text
    assert "goodTillDate" in errors[trades["GTD past"].order.orderId][0][1]
    assert off_tick.orderStatus.status == "Cancelled" and errors[off_tick.order.orderId][0][0] == 110
    assert ex.open_orders() == []


async def test_ibapi_order_types_fill_at_the_path_prices(make_exchange, until) -> None:
    """IB's official client (server version 157): STP, STP LMT, MOC and OPG fill where the path says."""
    ex = await make_exchange(max_server_version=157)
    app = IbapiClient()
    await asyncio.to_thread(app.start, ex.port, 21)
    try:
        await until(lambda: app.rec.next_id is not None, what="ibapi connected")
        app.reqContractDetails(1, app.future("CL"))
        await until(app.rec.details_done.is_set, what="contract details")
        contract = app.rec.details[0].contract
        con_id = contract.conId
        now = ex.clock.now()
        s = session_of(ex, "CL", con_id)
        end = s.close - M
        rest = rest_of_session(s, now, end)
        buy_stop = on_grid((rest[0] + max(rest)) / 2, CL_TICK)
        sell_stop = on_grid((rest[0] + min(rest)) / 2, CL_TICK)
        sell_limit = on_grid(sell_stop - 0.05, CL_TICK)
        nxt = next_session(ex, "CL", con_id, now)
        ids = {k: app.take_id() for k in ("stp", "stplmt", "moc", "opg")}
        app.placeOrder(ids["stp"], contract, app.order("BUY", 1, "STP", aux=buy_stop))
        app.placeOrder(ids["stplmt"], contract, app.order("SELL", 1, "STP LMT", lmt=sell_limit, aux=sell_stop))
        app.placeOrder(ids["moc"], contract, app.order("SELL", 2, "MOC"))
        app.placeOrder(ids["opg"], contract, app.order("BUY", 1, "MKT", tif="OPG"))
        await until(lambda: len(app.rec.status) == 4, what="acks")
        await ex.advance_to(nxt.open + 5 * M)
        qty = {"stp": 1, "stplmt": 1, "moc": 2, "opg": 1}
        # the status and the executions come on different messages: wait for both
        await until(lambda: all(app.rec.status.get(i) == "Filled"
                                and sum(q for _, _, q in app.rec.fills.get(i, [])) == qty[k] for k, i in ids.items()),
                    what="ibapi fills", timeout=10)  # fmt: skip
        got = {k: [(p, q) for _, p, q in app.rec.fills[i]] for k, i in ids.items()}
        up = first_trigger(s, "BUY", buy_stop, now, end)
        down = first_trigger(s, "SELL", sell_stop, now, end)
        assert got["stp"] == [(p, q) for _, p, q in expected_after_trigger(ex, con_id, "BUY", 1, None, up, end)]
        assert got["stplmt"] == [(p, q) for _, p, q in
                                 expected_after_trigger(ex, con_id, "SELL", 1, sell_limit, down, end)]  # fmt: skip
        assert got["moc"] == [(float(s.path.price[-1]), 2)]
        assert got["opg"] == [(float(nxt.path.price[0]), 1)]
        assert not [e for e in app.rec.errors if e[1] not in (2104, 2106, 2158)]
    finally:
        await asyncio.to_thread(app.stop)


async def test_stop_across_a_gap_fills_beyond_it_not_at_the_stale_stop(make_exchange, ib_client, until) -> None:
    """A stop resting between sessions, jumped over by the next open: it triggers on the opening
    print and fills on the print after it, at the market beyond the gap, never at its own price."""
    ex = await make_exchange()
    ib = await ib_client(ex=ex)
    c = await front(ib)
    s = session_of(ex, "CL", c.conId)
    for _ in range(15):  # the first overnight gap of at least 20 ticks
        nxt = next_session(ex, "CL", c.conId, s.close)
        gap = float(nxt.path.price[0]) - float(s.path.price[-1])
        if abs(gap) >= 20 * CL_TICK:
            break
        s = nxt
    else:
        pytest.fail("no overnight gap in the first sessions")
    await ex.advance_to(s.close + M)
    side = "BUY" if gap > 0 else "SELL"
    stop = on_grid(float(s.path.price[-1]) + gap / 2, CL_TICK)
    trade = ib.placeOrder(c, StopOrder(side, 1, stop, tif="GTC"))
    await until(lambda: trade.orderStatus.status == "PreSubmitted", what="resting between sessions")
    end = nxt.open + 10 * M
    await ex.advance_to(end)
    await until(trade.isDone, what="filled after the gap")
    opening_print = nxt.path.step_time(0)
    assert first_trigger(nxt, side, stop, s.close + M, end) == opening_print
    expected = expected_after_trigger(ex, c.conId, side, 1, None, opening_print, end)
    assert fills(trade) == [(t, p, float(q)) for t, p, q in expected]
    [(t, price, _)] = fills(trade)
    assert t > opening_print and abs(price - stop) >= 5 * CL_TICK
    assert (price > stop) if side == "BUY" else (price < stop)  # beyond the gap, as IB's stop would
