"""Brackets and OCA groups with the real ib_async client (server versions 157 and 178): transmit=False
staging, children held until the parent fills, each OCA type with and without block, and what
survives a restart from the state file (a resting stop, held children, an OCA group)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from ib_async import Future, LimitOrder, MarketOrder, StopOrder
from order_paths import expected_after_trigger, first_trigger, on_grid, rest_of_session, session_of

pytestmark = pytest.mark.timeout(60)
M = dt.timedelta(minutes=1)
CL_TICK = 0.01


async def front(ib, symbol: str = "CL"):
    [d, *_] = await ib.reqContractDetailsAsync(Future(symbol))
    return d.contract


def fill_times(trade) -> list[dt.datetime]:
    return [f.execution.time for f in trade.fills]


@pytest.mark.parametrize("version", [157, 178])
async def test_bracket_is_staged_then_children_wait_for_the_parent(make_exchange, ib_client, until,
                                                                   version: int) -> None:  # fmt: skip
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib)
    now = ex.clock.now()
    s = session_of(ex, "CL", c.conId)
    end = s.close - M
    rest = rest_of_session(s, now, end)
    [tk] = await ib.reqTickersAsync(c)
    entry = on_grid(tk.ask + 0.20, CL_TICK)  # marketable: fills on the first print
    stop_loss = on_grid(min(rest) + 0.05, CL_TICK)
    bracket = ib.bracketOrder("BUY", 2, entry, takeProfitPrice=95.0, stopLossPrice=stop_loss)
    parent = ib.placeOrder(c, bracket.parent)
    take = ib.placeOrder(c, bracket.takeProfit)
    await ib.reqCurrentTimeAsync()  # a round trip: anything the exchange would send has arrived
    assert parent.orderStatus.status == take.orderStatus.status == "PendingSubmit"
    assert ex.open_orders() == [] and ex.book.orders  # staged, not working, nothing reported
    await ex.advance_to(now + M)
    assert ex.positions() == {}  # a staged parent never trades
    stop = ib.placeOrder(c, bracket.stopLoss)  # transmit=True: the whole bracket goes
    await until(lambda: parent.orderStatus.status == "Submitted" and take.orderStatus.status == "PreSubmitted"
                and stop.orderStatus.status == "PreSubmitted", what="bracket transmitted")  # fmt: skip
    assert {t.order.parentId for t in (take, stop)} == {parent.order.orderId}
    await ex.advance_to(end)
    await until(lambda: parent.isDone() and stop.isDone() and take.isDone(), what="bracket played")
    parent_fill = max(fill_times(parent))
    assert parent.orderStatus.status == "Filled"
    trigger = first_trigger(s, "SELL", stop_loss, parent_fill, end)
    expected = expected_after_trigger(ex, c.conId, "SELL", 2, None, trigger, end)
    assert [(f.execution.time, f.execution.price) for f in stop.fills] == [(t, p) for t, p, _ in expected]
    assert min(fill_times(stop)) > parent_fill  # a child only sees prints after its parent filled
    assert take.orderStatus.status == "Cancelled" and not take.fills  # the implicit OCA of the children
    assert ex.positions() == {}


async def test_cancelling_a_parent_cancels_its_children(exchange, ib_client, until) -> None:
    ib = await ib_client()
    c = await front(ib)
    working = ib.bracketOrder("BUY", 1, 20.0, takeProfitPrice=95.0, stopLossPrice=10.0)
    trades = [ib.placeOrder(c, o) for o in working]
    await until(lambda: trades[0].orderStatus.status == "Submitted", what="transmitted")
    ib.cancelOrder(working.parent)
    await until(lambda: all(t.orderStatus.status == "Cancelled" for t in trades), what="cascade")
    staged = ib.bracketOrder("SELL", 1, 99.0, takeProfitPrice=10.0, stopLossPrice=98.0)
    s_parent, s_take = ib.placeOrder(c, staged.parent), ib.placeOrder(c, staged.takeProfit)
    await ib.reqCurrentTimeAsync()
    ib.cancelOrder(staged.parent)  # a staged parent: its staged children go with it
    await until(lambda: s_parent.orderStatus.status == "Cancelled" and s_take.orderStatus.status == "Cancelled",
                what="staged cascade")  # fmt: skip
    assert exchange.open_orders() == []
    late = ib.placeOrder(c, staged.stopLoss)  # its parent is gone: refused
    await until(lambda: late.isDone(), what="orphan refused")
    assert late.orderStatus.status == "Inactive"
    assert "Parent order" in " ".join(e.message for e in late.log)


@pytest.mark.parametrize(("oca_type", "filled_total"), [(1, 1), (2, 1), (3, 2)])
async def test_oca_block_lets_one_member_fill_per_print(make_exchange, ib_client, until, oca_type: int,
                                                        filled_total: int) -> None:  # fmt: skip
    """Two market orders in one group trade on the same print: with block (1, 2) one fills and the
    other is cancelled (type 1) or shrunk to nothing (type 2); without block (3) both fill (IB's
    overfill risk)."""
    ex = await make_exchange()
    ib = await ib_client(ex=ex)
    c = await front(ib)
    orders = ib.oneCancelsAll([MarketOrder("BUY", 1), MarketOrder("BUY", 1)], f"g{oca_type}", oca_type)
    trades = [ib.placeOrder(c, o) for o in orders]
    await until(lambda: all(t.orderStatus.status == "Submitted" for t in trades), what="acks")
    assert all(t.order.ocaGroup == f"g{oca_type}" and t.order.ocaType == oca_type for t in trades)
    await ex.advance_to(ex.clock.now() + 5 * M)
    await until(lambda: all(t.isDone() for t in trades), what="group played")
    assert sum(t.orderStatus.filled for t in trades) == filled_total
    assert ex.positions()[c.conId].qty == filled_total
    if filled_total == 1:
        [loser] = [t for t in trades if not t.fills]
        assert loser.orderStatus.status == "Cancelled"
    else:
        assert fill_times(trades[0]) == fill_times(trades[1])  # the same print


@pytest.mark.parametrize("version", [157, 178])
async def test_oca_reduce_shrinks_the_others_by_the_filled_share(make_exchange, ib_client, until,
                                                                 version: int) -> None:  # fmt: skip
    ex = await make_exchange(max_server_version=version)
    ib = await ib_client(ex=ex)
    c = await front(ib, "ZR")  # thin: a 30-lot fills in parts
    [tk] = await ib.reqTickersAsync(c)
    tick = 0.005
    a, b, far = ib.oneCancelsAll([LimitOrder("BUY", 30, on_grid(tk.ask + 10 * tick, tick)),
                                  LimitOrder("BUY", 30, on_grid(tk.bid - 200 * tick, tick)),
                                  LimitOrder("BUY", 15, on_grid(tk.bid - 200 * tick, tick))], "reduce", 2)  # fmt: skip
    ta, tb, tf = (ib.placeOrder(c, o) for o in (a, b, far))
    await until(lambda: all(t.orderStatus.status == "Submitted" for t in (ta, tb, tf)), what="acks")
    await ex.advance_to(ex.clock.now() + 2 * dt.timedelta(hours=1))
    await until(lambda: ta.orderStatus.filled > 0, what="a partial fill")
    got = ta.orderStatus.filled
    assert 0 < got < 30
    await until(lambda: tb.order.totalQuantity == 30 - got, what="b shrunk")
    assert tf.order.totalQuantity == 15 - round(got * 15 / 30) or tf.isDone()
    assert tb.orderStatus.remaining == 30 - got and not tb.fills


async def test_oca_cancel_rest_and_a_member_cancelled_by_the_client(exchange, ib_client, until) -> None:
    ib = await ib_client()
    c = await front(ib)
    far, other, fills = ib.oneCancelsAll([LimitOrder("BUY", 1, 20.0, tif="GTC"), LimitOrder("BUY", 1, 21.0),
                                          MarketOrder("BUY", 1)], "one", 1)  # fmt: skip
    t_far, t_other = ib.placeOrder(c, far), ib.placeOrder(c, other)
    await until(lambda: t_far.orderStatus.status == t_other.orderStatus.status == "Submitted", what="acks")
    ib.cancelOrder(other)  # cancelling a member leaves the others working (OCA acts on executions)
    await until(lambda: t_other.orderStatus.status == "Cancelled", what="member cancelled")
    await exchange.advance_to(exchange.clock.now() + M)
    assert t_far.orderStatus.status == "Submitted"
    t_mkt = ib.placeOrder(c, fills)
    await exchange.advance_to(exchange.clock.now() + 5 * M)
    await until(lambda: t_mkt.isDone() and t_far.isDone(), what="execution cancels the rest")
    assert t_mkt.orderStatus.status == "Filled" and t_far.orderStatus.status == "Cancelled"


async def test_resting_stop_bracket_and_oca_survive_a_restart(make_exchange, ib_client, until, tmp_path) -> None:
    path = tmp_path / "state.json"
    a = await make_exchange(state_path=path)
    ib = await ib_client(client_id=4, ex=a)
    c = await front(ib)
    now = a.clock.now()
    s = session_of(a, "CL", c.conId)
    end = s.close - M
    rest = rest_of_session(s, now, end)
    stop_price = on_grid((rest[0] + max(rest)) / 2, CL_TICK)
    entry = on_grid(min(rest) + 0.03, CL_TICK)  # reached later in the session: the parent rests
    stop = ib.placeOrder(c, StopOrder("BUY", 1, stop_price, tif="GTC", orderRef="resting-stop"))
    bracket = ib.bracketOrder("BUY", 1, entry, takeProfitPrice=95.0, stopLossPrice=5.0)
    for o in bracket:
        o.orderRef = "bracket"
    b_trades = [ib.placeOrder(c, o) for o in bracket]
    oca = ib.oneCancelsAll([LimitOrder("SELL", 1, 95.0, tif="GTC", orderRef="oca-far"),
                            StopOrder("SELL", 1, entry, tif="GTC", orderRef="oca-stop")], "keep", 1)  # fmt: skip
    o_trades = [ib.placeOrder(c, o) for o in oca]
    await until(lambda: stop.orderStatus.status == "Submitted" and b_trades[2].orderStatus.status == "PreSubmitted"
                and all(t.orderStatus.status == "Submitted" for t in o_trades), what="acks")  # fmt: skip
    ib.disconnect()
    await a.stop()

    b = await make_exchange(state_path=path)
    by_ref = {}
    for o in b.open_orders():
        by_ref.setdefault(o.order_ref, []).append(o)
    [st] = by_ref["resting-stop"]
    assert (st.order_type, st.aux_price, st.triggered, st.status) == ("STP", stop_price, False, "Submitted")
    assert sorted(o.status for o in by_ref["bracket"]) == ["PreSubmitted", "PreSubmitted", "Submitted"]
    assert {o.oca_group for o in (*by_ref["oca-far"], *by_ref["oca-stop"])} == {"keep"}
    ib2 = await ib_client(client_id=4, ex=b)
    await b.advance_to(end)
    trades = {t.order.orderId: t for t in ib2.trades()}
    await until(lambda: all(trades[t.order.orderId].isDone() for t in [stop, *o_trades, b_trades[0]])
                and trades[b_trades[1].order.orderId].orderStatus.status == "Submitted",
                what="played after the restart")  # fmt: skip
    stop_after = trades[stop.order.orderId]
    trigger = first_trigger(s, "BUY", stop_price, now, end)
    expected = expected_after_trigger(b, c.conId, "BUY", 1, None, trigger, end)
    assert [(f.execution.time, f.execution.price) for f in stop_after.fills] == [(t, p) for t, p, _ in expected]
    parent = trades[b_trades[0].order.orderId]
    child = trades[b_trades[1].order.orderId]
    assert parent.orderStatus.status == "Filled" and child.orderStatus.status == "Submitted"  # released
    far, oca_stop = trades[o_trades[0].order.orderId], trades[o_trades[1].order.orderId]
    assert oca_stop.orderStatus.status == "Filled" and far.orderStatus.status == "Cancelled"
    await asyncio.sleep(0)
    assert b.book.orders[(4, far.order.orderId)].status == "Cancelled"


async def test_faults_on_brackets_reject_the_last_child_and_race_a_parent(make_exchange, ib_client, until) -> None:
    """A rejected transmitting child transmits nothing (the bracket stays staged until a good child
    comes); a cancel racing a fill of the parent leaves the released children working."""
    ex = await make_exchange(faults="reject@order=3;cancel_race@cancel=1")
    ib = await ib_client(ex=ex)
    c = await front(ib)
    bracket = ib.bracketOrder("BUY", 1, 20.0, takeProfitPrice=95.0, stopLossPrice=10.0)
    parent, take, stop = (ib.placeOrder(c, o) for o in bracket)
    await until(lambda: stop.orderStatus.status == "Inactive", what="the transmitting child rejected")
    await ib.reqCurrentTimeAsync()
    assert parent.orderStatus.status == take.orderStatus.status == "PendingSubmit"
    assert ex.open_orders() == []  # nothing works without its stop-loss
    again = StopOrder("SELL", 1, 10.0, parentId=parent.order.orderId)
    stop2 = ib.placeOrder(c, again)
    await until(lambda: parent.orderStatus.status == "Submitted" and stop2.orderStatus.status == "PreSubmitted"
                and take.orderStatus.status == "PreSubmitted", what="transmitted with the new child")  # fmt: skip
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    ib.cancelOrder(bracket.parent)  # the race: the parent fills at the current price first
    await until(lambda: parent.orderStatus.status == "Filled" and 10148 in errors, what="race")
    await until(lambda: take.orderStatus.status == stop2.orderStatus.status == "Submitted", what="children released")
    assert ex.positions()[c.conId].qty == 1
    assert sorted(o.order_id for o in ex.open_orders()) == sorted([take.order.orderId, stop2.order.orderId])
