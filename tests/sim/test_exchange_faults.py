"""Fault injection: the spec, determinism, and each fault as the real ib_async client sees it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from ib_async import Future, LimitOrder, MarketOrder

from hydra_engine.sim import FaultPlan, FaultSpecError

pytestmark = pytest.mark.timeout(60)


def test_spec_parses_the_documented_example() -> None:
    plan = FaultPlan("restart@order=3:down=2;drop@fill=1;reject@order=5;rate:drop=0.01;"
                     "notice@t=2018-03-01T15:00:1101")  # fmt: skip
    kinds = [(r.kind, r.trigger) for r in plan.rules]
    assert kinds == [("restart", "order"), ("drop", "fill"), ("reject", "order"), ("drop", "rate"), ("notice", "t")]
    assert plan.rules[0].params == {"down": 2.0}
    assert plan.rules[4].params == {"code": 1101.0}
    assert plan.rules[4].at == dt.datetime(2018, 3, 1, 15, 0, tzinfo=dt.timezone.utc)
    assert [f.kind for f in plan.on_order()] == []
    assert [f.kind for f in plan.on_order()] == []
    assert [f.kind for f in plan.on_order()] == ["restart"]


@pytest.mark.parametrize("spec,match", [
    ("explode@order=1", "kind 'explode'"),
    ("drop@order=0", "must be >= 1"),
    ("drop@tick=3", "trigger 'tick'"),
    ("reject@fill=1", "cannot be triggered by fill"),
    ("rate:drop=2", "outside 0..1"),
    ("notice@t=2018-03-01T15:00:code=9999", "notice code 9999"),
    ("restart@order=1:down=x", "key=number"),
])  # fmt: skip
def test_bad_specs_name_the_item(spec: str, match: str) -> None:
    with pytest.raises(FaultSpecError, match=match):
        FaultPlan(spec)


def test_rates_are_deterministic_per_seed() -> None:
    def run(seed: int) -> list[int]:
        plan = FaultPlan("rate:drop=0.2;rate:dup_exec=0.5", seed)
        return [len(plan.on_request()) + 10 * len(plan.on_fill()) for _ in range(200)]

    assert run(3) == run(3)
    assert run(3) != run(4)
    hits = sum(1 for x in run(3) if x % 10)
    assert 20 < hits < 65  # about 20 % of 200


async def _front(ib):
    return (await ib.reqContractDetailsAsync(Future("CL")))[0].contract


async def test_restart_on_order_then_reconnect_finds_the_order(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="restart@order=2:down=0.3")
    ib = await ib_client(client_id=2, ex=ex)
    c = await _front(ib)
    ib.placeOrder(c, LimitOrder("BUY", 1, 20.0, tif="GTC", orderRef="one"))
    lost = asyncio.Event()
    ib.disconnectedEvent += lambda: lost.set()
    ib.placeOrder(c, LimitOrder("BUY", 1, 21.0, tif="GTC", orderRef="two"))
    await asyncio.wait_for(lost.wait(), 5)
    await until(lambda: ex.serving, what="gateway back")
    again = await ib_client(client_id=2, ex=ex)
    assert sorted(t.order.orderRef for t in again.openTrades()) == ["one", "two"]


async def test_drop_at_fill_then_execution_recovered(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="drop@fill=1")
    ib = await ib_client(client_id=3, ex=ex)
    c = await _front(ib)
    trade = ib.placeOrder(c, MarketOrder("BUY", 1, orderRef="lost-fill"))
    await until(lambda: trade.orderStatus.status == "Submitted")
    lost = asyncio.Event()
    ib.disconnectedEvent += lambda: lost.set()
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=5))
    await asyncio.wait_for(lost.wait(), 5)
    assert trade.fills == []  # never delivered live
    again = await ib_client(client_id=3, ex=ex)
    assert [f.execution.orderRef for f in again.fills()] == ["lost-fill"]
    assert [p.position for p in again.positions()] == [1]


async def test_reject_and_duplicated_execution(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="reject@order=1;dup_exec@fill=1")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    seen: list[str] = []
    original = ib.wrapper.execDetails

    def counting(req_id, contract, execution):  # observe raw EXECUTION_DATA messages
        seen.append(execution.execId)
        original(req_id, contract, execution)

    ib.wrapper.execDetails = counting
    rejected = ib.placeOrder(c, MarketOrder("BUY", 1))
    await until(lambda: rejected.isDone())
    assert any(e.errorCode == 201 for e in rejected.log)
    trade = ib.placeOrder(c, MarketOrder("BUY", 1))
    await until(lambda: trade.orderStatus.status == "Submitted")
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=5))
    await until(lambda: trade.isDone() and len(seen) >= 2)
    assert len(seen) == 2 and seen[0] == seen[1]  # the same execId twice on the wire
    assert len(trade.fills) == 1  # ib_async keeps it once
    assert ex.positions()[c.conId].qty == 1  # and the exchange booked it once


async def test_a_corrected_execution_comes_under_a_new_exec_id_and_moves_nothing(make_exchange, ib_client, until) -> None:
    """IB corrects a fill by sending it again under a new execId (the last group one higher): the
    client hears both, a reconnecting client's reqExecutions finds both, the position counts it
    once, and the exchange's record holds both, the correction after its original."""
    from hydra_engine.sim.audit_log import audit_path, read_audit

    ex = await make_exchange(faults="correct@fill=1")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    seen: list[str] = []
    original = ib.wrapper.execDetails

    def counting(req_id, contract, execution):
        seen.append(execution.execId)
        original(req_id, contract, execution)

    ib.wrapper.execDetails = counting
    trade = ib.placeOrder(c, MarketOrder("BUY", 1, orderRef="fix-me"))
    await until(lambda: trade.orderStatus.status == "Submitted")
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=5))
    await until(lambda: len(seen) >= 2)
    first, fixed = seen
    assert first != fixed and first.rsplit(".", 1)[0] == fixed.rsplit(".", 1)[0]
    assert int(fixed.rsplit(".", 1)[1], 16) == int(first.rsplit(".", 1)[1], 16) + 1
    assert ex.positions()[c.conId].qty == 1  # booked once
    replay = await ib.reqExecutionsAsync()
    assert sorted(f.execution.execId for f in replay) == sorted([first, fixed])
    await ex.save_state()
    record = [r["exec_id"] for r in read_audit(audit_path(ex.state_path)) if r["type"] == "execution"]
    assert record == [first, fixed]


async def test_fill_racing_a_cancel(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="cancel_race@cancel=1")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    trade = ib.placeOrder(c, LimitOrder("BUY", 2, 20.0, tif="GTC"))
    await until(lambda: trade.orderStatus.status == "Submitted")
    ib.cancelOrder(trade.order)
    await until(lambda: trade.orderStatus.status == "Filled" and errors)
    assert errors == [10148]
    assert trade.orderStatus.filled == 2 and len(trade.fills) >= 1


async def test_cancel_race_waits_for_a_working_order(make_exchange, ib_client, until) -> None:
    """A cancel of an order that no longer works has nothing to race: the rule waits for the next
    cancel whose order still works instead of being spent on it."""
    ex = await make_exchange(faults="cancel_race@cancel=1")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    ib.client.cancelOrder(987654, "")  # cancel 1: no such order, nothing to race
    await until(lambda: errors)
    assert ex.faults.fired == [] and ex.faults.counts["cancel"] == 1
    trade = ib.placeOrder(c, LimitOrder("BUY", 2, 20.0, tif="GTC"))
    await until(lambda: trade.orderStatus.status == "Submitted")
    ib.cancelOrder(trade.order)  # cancel 2: the order works, so the race fires here
    await until(lambda: trade.orderStatus.status == "Filled" and 10148 in errors)
    assert ex.faults.fired == [("cancel_race", "cancel=2")]
    assert trade.orderStatus.filled == 2


async def test_an_order_held_for_its_cancel_races_it(make_exchange, ib_client, until, tmp_path) -> None:
    """``cancel_race@order=N``: the Nth order rests unfilled whatever the market, survives an
    exchange restart from its state file, and its cancel races a fill (10148), so a cancel race
    happens whenever the client cancels at all, however fast the market would have filled it."""
    state = tmp_path / "held.json"
    ex = await make_exchange(faults="cancel_race@order=2", state_path=state)
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    first = ib.placeOrder(c, MarketOrder("BUY", 1, orderRef="first"))
    held = ib.placeOrder(c, MarketOrder("BUY", 2, orderRef="held"))
    await until(lambda: held.orderStatus.status == "Submitted")
    await ex_advance(ex, minutes=30)
    await until(lambda: first.orderStatus.status == "Filled")
    assert held.orderStatus.status == "Submitted" and held.fills == []  # marketable, yet it rests
    assert ex.faults.fired == []  # the rule fires at the race, not when it holds the order
    ib.disconnect()
    await ex.stop()
    again = await make_exchange(faults="cancel_race@order=2", state_path=state)
    ib2 = await ib_client(ex=again)
    await ex_advance(again, minutes=30)
    errors: list[int] = []
    ib2.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    trade = next(t for t in ib2.openTrades() if t.order.orderRef == "held")
    assert trade.orderStatus.status == "Submitted" and trade.orderStatus.filled == 0
    ib2.cancelOrder(trade.order)
    await until(lambda: trade.orderStatus.status == "Filled" and 10148 in errors)
    assert again.faults.fired == [("cancel_race", "order=2 (its cancel)")]
    assert again.positions()[c.conId].qty == 3


async def ex_advance(ex, minutes: int) -> None:
    await ex.advance_to(ex.clock.now() + dt.timedelta(minutes=minutes))


async def test_a_held_order_that_expires_passes_the_race_to_the_next(make_exchange, ib_client, until) -> None:
    """A resting DAY order that expires was never cancelled: the rule waits for the next working order."""
    ex = await make_exchange(faults="cancel_race@order=1")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    day = ib.placeOrder(c, MarketOrder("BUY", 1, tif="DAY", orderRef="day"))
    await until(lambda: day.orderStatus.status in ("Submitted", "PreSubmitted"))
    await ex_advance(ex, minutes=60 * 30)
    await until(lambda: day.orderStatus.status == "Cancelled")
    assert day.fills == [] and ex.faults.fired == []
    nxt = ib.placeOrder(c, LimitOrder("BUY", 1, 200.0, tif="GTC", orderRef="next"))
    await until(lambda: nxt.orderStatus.status in ("Submitted", "PreSubmitted"))
    await ex_advance(ex, minutes=30)
    assert nxt.fills == []  # marketable at 200, yet held
    ib.cancelOrder(nxt.order)
    await until(lambda: nxt.orderStatus.status == "Filled")
    assert [k for k, _ in ex.faults.fired] == ["cancel_race"]


async def test_notice_at_time_and_pacing_fault(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="notice@t=2018-01-02T13:00:1101;pacing@hist=1")
    ib = await ib_client(ex=ex)
    c = await _front(ib)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
    bars = await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)
    assert list(bars) == [] and codes == [162]
    bars = await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)
    assert len(bars) == 5
    await ex.advance_to(dt.datetime(2018, 1, 2, 12, 59, tzinfo=dt.timezone.utc))
    await ex.advance_to(dt.datetime(2018, 1, 2, 13, 1, tzinfo=dt.timezone.utc))
    await until(lambda: 1101 in codes)
    assert codes == [162, 1101]


async def test_identical_history_request_is_paced_in_simulated_time(exchange, ib_client) -> None:
    ib = await ib_client()
    c = await _front(ib)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
    assert len(await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)) == 5
    assert list(await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)) == []
    assert codes == [162]
    await exchange.advance_to(exchange.clock.now() + dt.timedelta(seconds=16))
    assert len(await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)) == 5


async def test_slow_end_at_connect_and_delayed_ack(make_exchange, ib_client, until) -> None:
    ex = await make_exchange(faults="slow_connect@connect=1:s=0.4;delay_ack@order=1:s=0.3")
    t0 = time.perf_counter()
    ib = await ib_client(ex=ex)
    assert time.perf_counter() - t0 >= 0.4
    c = await _front(ib)
    t1 = time.perf_counter()
    trade = ib.placeOrder(c, LimitOrder("BUY", 1, 20.0))
    await until(lambda: trade.orderStatus.status == "Submitted")
    assert time.perf_counter() - t1 >= 0.3
