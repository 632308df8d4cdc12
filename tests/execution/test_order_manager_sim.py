"""OrderManager end to end: real store, real risk gate, real fill journal, the real ib_async client
and the embedded exchange in lock-step. The test steps the exchange's clock only when the order
manager is idle (every order waiting on the clock), as the lock-step composition root does."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from hydra_engine.broker.connection import BackoffPolicy
from hydra_engine.broker.errors import ApprovalRejected, ContractNotFound, NotConnected
from hydra_engine.broker.gateway import BrokerGateway
from hydra_engine.execution.order_manager import OrderManager
from hydra_engine.execution.order_waiting import BusyTracker
from hydra_engine.execution.patience import PatienceSchedule, PatienceStep
from hydra_engine.markets import CATALOG, MarketConfig
from hydra_engine.risk.gate import RiskConfig, RiskGate
from hydra_engine.sim import EmbeddedExchange
from hydra_engine.store.database import Store

ACCOUNT = "DU1234567"
FAST = PatienceSchedule(
    steps=(PatienceStep(0, 0.0), PatienceStep(60, 0.5), PatienceStep(120, 1.0), PatienceStep(180, 1.0, 2)),
    cancel_after_s=300,
)
AGGRESSIVE = PatienceSchedule(steps=(PatienceStep(0, 1.0, 10), PatienceStep(60, 1.0, 40)), cancel_after_s=1800)


async def make_gate(store: Store, clock: Any, **config: Any) -> RiskGate:
    cfg = RiskConfig(**{"price_band_bps": 500.0, **config})
    return await RiskGate.open(store.conn, cfg, tx=store.tx, today=lambda: clock.now().date())


@dataclass
class Rig:
    ex: EmbeddedExchange
    store: Store
    gw: BrokerGateway
    om: OrderManager
    journal: Any
    gate: RiskGate

    async def fills(self) -> list[Any]:
        return list(await self.journal.fills())

    async def route(self, market: MarketConfig, direction: str, n: int, **kw: Any) -> asyncio.Task:
        for _ in range(5):  # a fault may drop the session under these requests: wait and ask again
            await self.gw.wait_until(lambda: self.gw.is_connected and self.gw.state_known, 15)
            try:
                resolved = await self.gw.resolve_contract(market)
                quote = await self.gw.get_quote(resolved.active)
                break
            except NotConnected:
                continue
        else:
            raise AssertionError("could not prepare the order")
        kwargs = dict(
            contract=resolved.active, direction=direction, n_contracts=n, adv=kw.pop("adv", 50_000.0),
            mid_price=quote.mid, daily_pnl=0.0, peak_equity=1_000_000.0, current_equity=1_000_000.0,
            position_value=n * quote.mid * resolved.active.multiplier, trade_loss=1_000.0 * n,
            current_position=0.0,
        )
        kwargs.update(kw)
        return asyncio.create_task(self.om.route_order(**kwargs))

    async def drive(self, task: asyncio.Task, step: dt.timedelta = dt.timedelta(seconds=30), max_steps: int = 400) -> Any:
        """Advance the exchange one step each time the order manager is idle, until ``task`` ends."""
        for _ in range(max_steps):
            idle = asyncio.ensure_future(self.om.wait_idle(timeout_s=15))
            done, _ = await asyncio.wait({task, idle}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            if task.done():
                return task.result()
            assert done, "order manager neither idle nor done"
            await self.ex.advance_to(self.ex.clock.now() + step)
        raise AssertionError("order did not finish")


@contextlib.asynccontextmanager
async def rig(tmp_path, universe: Any, *, faults: str | None = None, patience: PatienceSchedule = FAST, start: dt.datetime | None = None,
              client_id: int = 5, ex: EmbeddedExchange | None = None, db_name: str = "hydra.db",
              risk: dict[str, Any] | None = None, market_data_type: int = 1, events: Any = None,
              wait_for_open: bool = True):
    own_ex = ex is None
    if ex is None:
        ex = await EmbeddedExchange.start(port=0, faults=faults, state_path=tmp_path / "exchange.json",
                                          universe=universe)
        if start is not None:
            await ex.advance_to(start)
    store = await Store.open_path(tmp_path / db_name, ACCOUNT, clock=ex.clock)
    from hydra_engine.execution.fill_journal import FillJournal

    journal = FillJournal(store.conn, tx=store.tx)
    gw = BrokerGateway(
        port=ex.port, client_id=client_id, embedded=True, clock=ex.clock,
        backoff=BackoffPolicy(initial_s=0.05, max_s=0.3, jitter=0.1), connect_timeout_s=2.0, request_timeout_s=5.0,
        market_data_type=market_data_type,
    )
    gate = await make_gate(store, ex.clock, **(risk or {}))
    om = OrderManager(gw, gate, store, journal, ex.clock, patience=patience, max_adv_fraction=0.01, events=events,
                      wait_for_open=wait_for_open)
    await gw.connect()
    try:
        yield Rig(ex, store, gw, om, journal, gate)
    finally:
        await om.close()
        await gw.disconnect()
        await gate.close()
        await store.close()
        if own_ex:
            await ex.stop()


# a Tuesday in the exchange's default year, CL session open (08:00 CT)
IN_SESSION = dt.datetime(2018, 1, 9, 14, 0, tzinfo=dt.UTC)
WEEKEND = dt.datetime(2018, 1, 6, 15, 0, tzinfo=dt.UTC)


async def test_whole_fill_is_journalled_once_with_slippage(tmp_path, sim_universe) -> None:
    from hydra_engine.events import EventBus, FillRecorded, OrderUpdated

    bus = EventBus()
    sub = bus.subscribe(types=(FillRecorded, OrderUpdated))
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=IN_SESSION, events=bus) as r:
        task = await r.route(CATALOG["CL"], "BUY", 1)
        result = await r.drive(task)
        await r.om.close()
        seen = []
        while (ev := sub.get_nowait()) is not None:
            seen.append(ev)
        assert [e.status for e in seen if isinstance(e, OrderUpdated)] == ["INTENT", "SENT", "ACKED", "FILLED"]
        assert [e.order_ref for e in seen if isinstance(e, FillRecorded)] == [result.order_refs[0]]
        assert result.status == "FILLED" and result.filled == 1
        fills = await r.fills()
        assert len(fills) == 1
        f = fills[0]
        assert f.direction == "BUY" and f.qty == 1 and f.order_ref == result.order_refs[0]
        assert f.arrival_mid is not None and f.limit_price is not None
        assert f.actual_slippage == pytest.approx(f.fill_price - f.arrival_mid)
        assert f.data_type == "live"
        assert f.commission is not None and f.commission > 0
        assert f.latency_ms is not None and f.latency_ms >= 0
        assert f.predicted_slippage is not None and f.predicted_slippage > 0
        rec = await r.store.orders.get(result.order_refs[0])
        assert rec.status.value == "FILLED" and rec.filled == 1 and rec.perm_id
        assert {p.local_symbol: p.quantity for p in await r.gw.get_positions()} == {rec.local_symbol: 1.0}


async def test_patience_escalates_then_cancels_when_nothing_trades(tmp_path, sim_universe) -> None:
    # weekend, schedule run from the send (not the open): the order rests and never fills
    async with rig(tmp_path, sim_universe, start=WEEKEND, wait_for_open=False) as r:
        task = await r.route(CATALOG["CL"], "SELL", 1)
        result = await r.drive(task)
        child = result.children[0]
        assert result.status == "CANCELLED" and result.filled == 0
        assert child.reprices >= 2  # mid -> half way -> touch -> through
        events = await r.store.orders.events(child.order_ref)
        assert [e.status for e in events][:2] == ["INTENT", "SENT"]
        assert events[-1].status == "CANCELLED"
        assert r.ex.open_orders() == []
        assert await r.fills() == []


async def test_reject_is_reported_and_journalled(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, faults="reject@order=1", start=IN_SESSION) as r:
        task = await r.route(CATALOG["CL"], "BUY", 1)
        result = await r.drive(task)
        assert result.status == "REJECTED" and result.filled == 0
        assert any("201" in reason for reason in result.reasons)
        rec = await r.store.orders.get(result.order_refs[0])
        assert rec.status.value == "REJECTED" and rec.error_code == 201


async def test_large_order_is_sliced_against_adv_and_fills_in_parts(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=IN_SESSION) as r:
        task = await r.route(CATALOG["CL"], "BUY", 3, adv=150.0)  # 1% of 150 -> one-lot slices
        result = await r.drive(task)
        assert len(result.children) == 3
        assert all(c.qty == 1 for c in result.children)
        assert result.filled == 3
        fills = await r.fills()
        assert sum(f.qty for f in fills) == 3
        assert len({f.exec_id for f in fills}) == len(fills)


async def test_fill_racing_a_cancel_is_journalled(tmp_path, sim_universe) -> None:
    patience = PatienceSchedule(steps=(PatienceStep(0, 0.0),), cancel_after_s=60)
    async with rig(tmp_path, sim_universe, faults="cancel_race@cancel=1", patience=patience, start=WEEKEND,
                   wait_for_open=False) as r:
        task = await r.route(CATALOG["CL"], "BUY", 1)
        result = await r.drive(task)
        assert result.status == "FILLED" and result.filled == 1  # the fill won the race (10148)
        assert len(await r.fills()) == 1


async def test_restart_mid_order_journals_the_fill_once(tmp_path, sim_universe) -> None:
    # marketable but resting: the weekend order waits for Sunday's open
    patience = PatienceSchedule(steps=(PatienceStep(0, 1.0, 100),), cancel_after_s=3 * 86400)
    async with rig(tmp_path, sim_universe, patience=patience, start=WEEKEND) as r:
        task = await r.route(CATALOG["CL"], "BUY", 1)
        await r.om.wait_idle(min_working=1)
        wo = r.om.working_orders[0]
        await r.ex.restart(0.5)
        await r.gw.wait_until(lambda: not r.gw.is_connected, 5)
        # while the gateway is down the market opens and the order fills at the exchange
        await r.ex.advance_to(dt.datetime(2018, 1, 8, 1, 0, tzinfo=dt.UTC))
        assert r.ex.executions_today() or r.ex.book.executions  # filled at the exchange meanwhile
        await r.gw.wait_until(lambda: r.gw.is_connected and r.gw.state_known, 10)
        result = await r.drive(task)
        assert result.filled == 1 and result.status == "FILLED"
        fills = await r.fills()
        assert len(fills) == 1 and fills[0].order_ref == wo.order_ref
        assert r.gw.supervisor.connects >= 2


async def test_crash_between_intent_and_send_never_resends(tmp_path, sim_universe) -> None:
    ex = await EmbeddedExchange.start(port=0, state_path=tmp_path / "exchange.json", universe=sim_universe)
    try:
        await ex.advance_to(WEEKEND)
        # 1. a process wrote two intents: one was sent (the broker has it), one never left
        async with rig(tmp_path, sim_universe, ex=ex, client_id=5) as r:
            resolved = await r.gw.resolve_contract(CATALOG["CL"])
            m = resolved.active
            await r.store.orders.record_intent("HY-lost", market="CL", symbol="CL", action="BUY", quantity=1,
                                               limit_price=10.0, con_id=m.con_id, local_symbol=m.local_symbol)
            task = await r.route(CATALOG["CL"], "BUY", 1)
            await r.om.wait_idle(min_working=1)
            sent_ref = r.om.working_orders[0].order_ref
            # crash: the process dies without cancelling (no clean shutdown of the order)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert [o.order_ref for o in ex.open_orders()] == [sent_ref]
        n_orders_before = len(ex.book.orders)
        # 2. restart on the same store and client id
        async with rig(tmp_path, sim_universe, ex=ex, client_id=5) as r2:
            lost = await r2.store.orders.get("HY-lost")
            sent = await r2.store.orders.get(sent_ref)
            assert lost.status.value == "CANCELLED" and "never re-sent" in lost.message
            assert sent.status.value == "CANCELLED"  # found at the broker, cancelled, not re-sent
            assert len(ex.book.orders) == n_orders_before  # nothing new was sent
    finally:
        await ex.stop()


async def test_unresolvable_contract_sends_nothing(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe) as r:
        with pytest.raises(ContractNotFound, match="XQZ"):
            await r.om.move_to_target(MarketConfig(symbol="XQZ", exchange="NYMEX"), 1)
        assert r.ex.open_orders() == [] and len(r.ex.book.orders) == 0


async def test_gate_denial_sends_nothing_and_is_journalled(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=IN_SESSION) as r:  # default 1% trade-loss cap
        res = await r.drive(asyncio.create_task(r.om.move_to_target(CATALOG["CL"], 2)))
        leg = res.legs[0]
        assert leg.status == "DENIED" and leg.filled == 0
        assert any(reason.startswith("single_trade_loss") for reason in leg.reasons)
        assert len(r.ex.book.orders) == 0
        rec = await r.store.orders.get(leg.order_refs[0])
        assert rec.status.value == "REJECTED" and "risk gate" in rec.message


async def test_move_to_target_orders_only_the_difference(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=IN_SESSION, risk={"max_trade_loss_pct": 10.0}) as r:
        first = asyncio.create_task(r.om.move_to_target(CATALOG["CL"], 2))
        res = await r.drive(first)
        assert res.legs[0].requested == 2 and res.filled == 2
        again = asyncio.create_task(r.om.move_to_target(CATALOG["CL"], 2))
        res2 = await r.drive(again)
        assert res2.legs == ()  # already there: nothing ordered
        down = asyncio.create_task(r.om.move_to_target(CATALOG["CL"], -1))
        res3 = await r.drive(down)
        # a reversal is two legs: flatten the long, then open the short (each checked on its own)
        assert [(leg.direction, leg.requested) for leg in res3.legs] == [("SELL", 2), ("SELL", 1)]
        assert sum(p.quantity for p in await r.gw.get_positions()) == -1


async def test_roll_moves_the_position_to_the_next_month(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=IN_SESSION, risk={"max_trade_loss_pct": 10.0}) as r:
        cl = CATALOG["CL"]
        res = await r.drive(asyncio.create_task(r.om.move_to_target(cl, 1)))
        assert res.filled == 1
        before = await r.gw.resolve_contract(cl)
        # step into the roll window of the month we hold (a weekday session inside it)
        day = before.roll_start
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        await r.ex.advance_to(dt.datetime.combine(day, dt.time(15, 0), dt.UTC))
        rolled = await r.drive(asyncio.create_task(r.om.move_to_target(cl, 1)))
        assert rolled.rolled
        assert [leg.direction for leg in rolled.legs] == ["SELL", "BUY"]
        positions = {p.con_id: p.quantity for p in await r.gw.get_positions()}
        after = await r.gw.resolve_contract(cl)
        assert positions == {after.active.con_id: 1.0}
        assert after.active.con_id != before.active.con_id


async def test_place_order_refuses_anything_but_an_unused_approval(tmp_path, sim_universe) -> None:
    from hydra_engine.risk.intents import AccountState, OrderIntent

    async with rig(tmp_path, sim_universe, start=WEEKEND) as r:
        m = (await r.gw.resolve_contract(CATALOG["CL"])).active
        q = await r.gw.get_quote(m)
        with pytest.raises(ApprovalRejected, match="Approval"):
            r.gw.place_order(object(), m, action="BUY", quantity=1, limit_price=q.bid, order_ref="HY-x")
        gate = r.gate  # the rig's real RiskGate

        def approve(ref: str, qty: int = 1) -> Any:
            intent = OrderIntent(market="CL", con_id=m.con_id, local_symbol=m.local_symbol, direction="BUY",
                                 qty=qty, limit_price=q.bid, mid_price=q.mid, order_ref=ref,
                                 position_value=q.mid * 1000 * qty, trade_loss=100.0)
            return gate.check(intent, AccountState(daily_pnl=0.0, current_equity=1e6, peak_equity=1e6))

        ok = approve("HY-a")
        r.gw.place_order(ok, m, action="BUY", quantity=1, limit_price=q.bid, order_ref="HY-a")
        with pytest.raises(ApprovalRejected, match="already used"):
            r.gw.place_order(ok, m, action="BUY", quantity=1, limit_price=q.bid, order_ref="HY-a2")
        other = approve("HY-b")
        with pytest.raises(ApprovalRejected, match="does not cover"):
            r.gw.place_order(other, m, action="BUY", quantity=2, limit_price=q.bid, order_ref="HY-b")
        assert not other.used  # a refused mismatch does not burn the approval
        await r.ex.advance_to(r.ex.clock.now() + dt.timedelta(seconds=1))
        assert [o.order_ref for o in r.ex.open_orders()] == ["HY-a"]  # only the approved order went out


async def test_order_still_working_after_reconnect_is_rebound_and_filled_once(tmp_path, sim_universe) -> None:
    patience = PatienceSchedule(steps=(PatienceStep(0, 1.0, 100),), cancel_after_s=3 * 86400)
    async with rig(tmp_path, sim_universe, patience=patience, start=WEEKEND) as r:
        task = await r.route(CATALOG["CL"], "BUY", 1)
        await r.om.wait_idle(min_working=1)
        wo = r.om.working_orders[0]
        old_trade = wo.trade
        await r.ex.restart(0.3)
        await r.gw.wait_until(lambda: not r.gw.is_connected, 5)
        await r.gw.wait_until(lambda: r.gw.is_connected and r.gw.state_known, 10)
        assert wo.order_ref in r.gw.last_sync.rebound_orders
        assert wo.trade is not old_trade  # bound to ib_async's fresh Trade
        result = await r.drive(task, step=dt.timedelta(hours=6))
        assert result.status == "FILLED"
        fills = await r.fills()
        assert len(fills) == 1 and fills[0].order_ref == wo.order_ref


async def test_unexplained_position_change_is_journalled_on_reconnect(tmp_path, sim_universe) -> None:
    from ib_async import IB, Future, MarketOrder

    async with rig(tmp_path, sim_universe, start=IN_SESSION) as r:
        m = (await r.gw.resolve_contract(CATALOG["CL"])).active
        other = IB()  # a manual trade from another session on the same account
        await other.connectAsync("127.0.0.1", r.ex.port, clientId=77, timeout=5)
        trade = other.placeOrder(Future(conId=m.con_id, exchange="NYMEX"), MarketOrder("BUY", 1))
        await r.ex.advance_to(r.ex.clock.now() + dt.timedelta(minutes=5))
        if not trade.isDone():
            await asyncio.wait_for(trade.filledEvent, 10)
        assert trade.orderStatus.status == "Filled"
        other.disconnect()
        await r.ex.restart(0.2)
        await r.gw.wait_until(lambda: not r.gw.is_connected, 5)
        await r.gw.wait_until(lambda: r.gw.is_connected and r.gw.state_known, 10)
        assert r.gw.last_sync.unexplained_positions
        entries = await r.store.ops.recent(kind="POSITION_CHANGE")
        assert entries and entries[0].detail["actual"] == 1.0 and entries[0].detail["expected"] == 0.0
        assert await r.fills() == []  # not our order: not journalled as our fill


async def test_partial_fill_then_cancel_is_journalled(tmp_path, sim_universe) -> None:
    patience = PatienceSchedule(steps=(PatienceStep(0, 1.0, 10),), cancel_after_s=20 * 60)
    start = dt.datetime(2018, 1, 9, 15, 0, tzinfo=dt.UTC)  # oats: thin, fills in parts
    async with rig(tmp_path, sim_universe, patience=patience, start=start, risk={"max_trade_loss_pct": 10.0}) as r:
        task = await r.route(CATALOG["ZO"], "BUY", 8)
        result = await r.drive(task, step=dt.timedelta(minutes=1))
        child = result.children[0]
        assert result.status == "PARTIAL" and 0 < result.filled < 8
        fills = await r.fills()
        assert sum(f.qty for f in fills) == result.filled
        assert len({f.exec_id for f in fills}) == len(fills) >= 2
        rec = await r.store.orders.get(child.order_ref)
        assert rec.status.value == "CANCELLED" and rec.filled == result.filled
        assert r.ex.open_orders() == []


async def test_fills_on_delayed_data_are_flagged(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=IN_SESSION, market_data_type=3) as r:
        result = await r.drive(await r.route(CATALOG["CL"], "SELL", 1))
        assert result.status == "FILLED"
        fills = await r.fills()
        assert [f.data_type for f in fills] == ["delayed"]


async def test_cancel_working_settles_every_order(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, start=WEEKEND) as r:
        tasks = [await r.route(CATALOG[s], "BUY", 1) for s in ("CL", "ZO")]
        await r.om.wait_idle(min_working=2)
        assert r.om.cancel_working(reason="flatten") == 2
        results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert [x.status for x in results] == ["CANCELLED", "CANCELLED"]
        assert r.ex.open_orders() == [] and r.om.working_orders == []


async def test_engine_stop_mid_order_leaves_it_unknown_then_resolved_on_restart(tmp_path, sim_universe) -> None:
    ex = await EmbeddedExchange.start(port=0, state_path=tmp_path / "exchange.json", universe=sim_universe)
    try:
        await ex.advance_to(WEEKEND)
        async with rig(tmp_path, sim_universe, ex=ex) as r:
            task = await r.route(CATALOG["CL"], "BUY", 1)
            await r.om.wait_idle(min_working=1)
            ref = r.om.working_orders[0].order_ref
            await r.gw.disconnect()  # engine stopping: no reconnect, the order's fate is unknown
            result = await asyncio.wait_for(task, 10)
            assert result.status == "UNKNOWN"
            assert (await r.store.orders.get(ref)).status.value == "UNKNOWN"
        async with rig(tmp_path, sim_universe, ex=ex) as r2:
            rec = await r2.store.orders.get(ref)
            assert rec.status.value == "CANCELLED"  # found working at the broker on restart: cancelled
        await ex.advance_to(ex.clock.now() + dt.timedelta(seconds=1))
        assert ex.open_orders() == []
    finally:
        await ex.stop()


async def test_fill_while_engine_down_is_journalled_once_by_the_next_process(tmp_path, sim_universe) -> None:
    ex = await EmbeddedExchange.start(port=0, state_path=tmp_path / "exchange.json", universe=sim_universe)
    patience = PatienceSchedule(steps=(PatienceStep(0, 1.0, 100),), cancel_after_s=3 * 86400)
    try:
        await ex.advance_to(WEEKEND)
        async with rig(tmp_path, sim_universe, ex=ex, patience=patience) as r:
            task = await r.route(CATALOG["CL"], "BUY", 1)
            await r.om.wait_idle(min_working=1)
            wo = r.om.working_orders[0]
            ref, arrival, named = wo.order_ref, wo.arrival_mid, wo.month.contract_month
            await r.gw.disconnect()  # the engine goes away with the order working
            await asyncio.wait_for(task, 10)
        await ex.advance_to(dt.datetime(2018, 1, 8, 1, 0, tzinfo=dt.UTC))  # it fills meanwhile
        assert [e.order_ref for e in ex.book.executions] == [ref]
        for _ in range(2):  # two later starts: journalled by the first, never twice
            async with rig(tmp_path, sim_universe, ex=ex, patience=patience) as r2:
                await r2.om.close()
                fills = await r2.fills()
                assert len(fills) == 1 and fills[0].order_ref == ref
                assert fills[0].arrival_mid == pytest.approx(arrival)
                assert fills[0].contract_month == named  # the month the order named, from its stored row
                assert fills[0].actual_slippage == pytest.approx(fills[0].fill_price - arrival)
                rec = await r2.store.orders.get(ref)
                assert rec.status.value == "FILLED" and rec.filled == 1
    finally:
        await ex.stop()


SOAK_FAULTS = (
    "rate:drop=0.06;rate:dup_exec=0.3;rate:delay_fill=0.2:s=0.1;rate:delay_ack=0.2:s=0.05;"
    "rate:cancel_race=0.3;notice@t=2018-01-09T14:20:1101;restart@fill=5:down=0.3"
)


@pytest.mark.parametrize("seed_orders", [12])
async def test_soak_under_faults_every_execution_once_and_nothing_sent_twice(
    tmp_path, sim_universe, seed_orders: int
) -> None:
    patience = PatienceSchedule(steps=(PatienceStep(0, 0.0), PatienceStep(60, 1.0, 5)), cancel_after_s=180)
    async with rig(tmp_path, sim_universe, faults=SOAK_FAULTS, patience=patience, start=IN_SESSION,
                   risk={"max_orders_per_day": 10_000}) as r:
        for i in range(seed_orders):
            await r.gw.wait_until(lambda: r.gw.is_connected and r.gw.state_known, 15)  # as each cycle does
            symbol = ("CL", "ZO")[i % 2]
            result = await r.drive(await r.route(CATALOG[symbol], ("BUY", "SELL")[i // 2 % 2], 1),
                                   step=dt.timedelta(seconds=20))
            assert result.status in ("FILLED", "CANCELLED", "PARTIAL", "REJECTED", "UNKNOWN")
        await r.gw.wait_until(lambda: r.gw.is_connected and r.gw.state_known, 15)
        await r.gw.resync()  # pick up anything a dropped connection hid
        await r.om.close()
        ours = [e for e in r.ex.book.executions if e.order_ref.startswith("HY-")]
        fills = await r.fills()
        assert sorted(f.exec_id for f in fills) == sorted(e.exec_id for e in ours)  # each exactly once
        refs = [o.order_ref for o in r.ex.book.orders.values()]
        assert len(refs) == len(set(refs))  # no order was sent twice
        rows = {rec.order_ref: rec for rec in await r.store.orders.recent(limit=1000)}
        assert set(refs) <= set(rows)  # everything sent was journalled as an intent first
        net: dict[int, float] = {}
        for e in ours:
            net[e.con_id] = net.get(e.con_id, 0.0) + (e.qty if e.side == "BOT" else -e.qty)
        positions = {p.con_id: p.quantity for p in await r.gw.get_positions()}
        assert positions == {k: v for k, v in net.items() if v}


async def test_order_sent_after_the_close_waits_for_the_open_and_anchors_there(tmp_path, sim_universe) -> None:
    """The patience schedule starts at the next session, from that session's mid, not at the send."""
    async with rig(tmp_path, sim_universe, start=WEEKEND) as r:
        task = await r.route(CATALOG["CL"], "SELL", 1)
        await r.om.wait_idle(timeout_s=15, min_working=1)
        wake = r.ex.clock.next_wakeup()
        assert wake is not None and wake > WEEKEND + dt.timedelta(hours=24), "should sleep until Sunday's open"
        wo = r.om.working_orders[0]
        sent_at = wo.arrival_at
        await r.ex.advance_to(wake)  # the open (+ its settle minute): nothing was repriced before it
        result = await r.drive(task)
        assert sent_at < wake <= wo.arrival_at, "arrival (mid and time) re-anchored at the session"
        assert result.status in {"FILLED", "PARTIAL", "CANCELLED"}
        for f in await r.fills():
            assert f.fill_time >= wake - dt.timedelta(seconds=60)  # never before the session opened
        events = [e.status for e in await r.store.orders.events(result.order_refs[0])]
        assert events[:2] == ["INTENT", "SENT"]


async def test_wait_idle_honours_a_cancel_that_races_its_wake_up() -> None:
    """On Python 3.11 ``asyncio.wait_for`` returns its inner result when a cancel lands just as the
    inner wait completed, swallowing the cancel; ``wait_idle`` must end cancelled all the same."""
    busy = BusyTracker()  # the order manager's busy accounting, which ``OrderManager.wait_idle`` waits on
    busy.enter()  # an order at work: the waiter has to wait
    try:
        waiter = asyncio.create_task(busy.wait_idle(30))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiter.done()
        busy.enter()
        busy.leave()  # a busy change that leaves it busy: the waiter's inner wait completes...
        await asyncio.sleep(0)
        waiter.cancel()  # ...and the cancel lands before the waiter runs again
        done, _ = await asyncio.wait({waiter}, timeout=2.0)
        assert waiter in done and waiter.cancelled()
    finally:
        busy.leave()
    assert busy.idle


async def test_wait_idle_waits_for_a_working_order_of_the_market(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=WEEKEND) as r:
        with pytest.raises(TimeoutError):
            await r.om.wait_idle(0.2, min_working=1, symbol="CL")  # idle, but nothing works for CL
        task = await r.route(CATALOG["CL"], "BUY", 1)
        await asyncio.wait_for(r.om.wait_idle(15, min_working=1, symbol="CL"), 20)
        assert r.om.idle and [w.month.symbol for w in r.om.working_orders] == ["CL"]
        with pytest.raises(TimeoutError):
            await r.om.wait_idle(0.2, min_working=1, symbol="ZO")
        r.om.cancel_working()
        await r.drive(task)


async def test_daily_pnl_after_an_exchange_holiday_is_not_stale(tmp_path, sim_universe) -> None:
    """Friday 2018-01-12, then Martin Luther King Jr. Day (no session), then Tuesday: the Friday mark
    is one trading day old, so Tuesday's loss from it counts (the daily-loss breaker sees it)."""
    tuesday = dt.date(2018, 1, 16)
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, risk={"max_trade_loss_pct": 10.0},
                   start=dt.datetime(2018, 1, 16, 15, 0, tzinfo=dt.UTC)) as r:
        await r.store.equity.record_mark(dt.date(2018, 1, 12), 1_100_000.0)  # Friday's close
        res = await r.drive(asyncio.create_task(
            r.om.move_to_target(CATALOG["CL"], 1, equity=r.store.equity, trading_date=tuesday)))
        leg = res.legs[0]
        assert leg.status == "DENIED" and leg.filled == 0
        assert any("daily_loss" in reason for reason in leg.reasons), leg.reasons
        assert len(r.ex.book.orders) == 0
