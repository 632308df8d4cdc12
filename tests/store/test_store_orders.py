"""Order intents: written before sending, forward-only status, lookups by orderRef and permId."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from hydra_engine.clock import ManualClock
from hydra_engine.store.database import Store
from hydra_engine.store.orders import (
    DuplicateOrderRefError,
    OrderStatus,
    UnknownOrderError,
    can_move,
)


async def intent(store: Store, ref: str = "H-CL-1", **kw) -> None:
    args = dict(market="CL", symbol="CL", action="BUY", quantity=2, limit_price=71.25,
                con_id=1001, local_symbol="CLK6", contract_month="202605", trading_date=date(2026, 3, 2),
                purpose="entry")
    args.update(kw)
    await store.orders.record_intent(ref, **args)


async def test_lifecycle_intent_sent_acked_filled(store: Store, clock: ManualClock) -> None:
    await intent(store)
    rec = await store.orders.get("H-CL-1")
    assert rec is not None and rec.status == OrderStatus.INTENT and rec.sent_at is None
    assert rec.created_at == clock.now() and rec.detail == {}
    assert [o.order_ref for o in await store.orders.unsent_intents()] == ["H-CL-1"]

    clock.advance(timedelta(seconds=1))
    rec = await store.orders.mark_sent("H-CL-1", order_id=17)
    assert rec.status == OrderStatus.SENT and rec.order_id == 17 and rec.sent_at == clock.now()
    assert await store.orders.unsent_intents() == []

    assert await store.orders.update_status("H-CL-1", "ACKED", perm_id=555, filled=1, avg_fill_price=71.2)
    rec = await store.orders.by_perm_id(555)
    assert rec is not None and rec.order_ref == "H-CL-1" and rec.status == OrderStatus.ACKED
    assert rec.filled == 1 and rec.remaining == 1 and rec.is_open

    assert await store.orders.update_status("H-CL-1", OrderStatus.FILLED, filled=2, avg_fill_price=71.22)
    rec = await store.orders.get("H-CL-1")
    assert rec is not None and rec.status == OrderStatus.FILLED and not rec.is_open and rec.remaining == 0
    assert [e.status for e in await store.orders.events("H-CL-1")] == ["INTENT", "SENT", "ACKED", "FILLED"]
    assert await store.orders.open_orders() == []


async def test_stale_reports_are_ignored(store: Store) -> None:
    await intent(store)
    await store.orders.update_status("H-CL-1", "FILLED", filled=2)
    assert not await store.orders.update_status("H-CL-1", "ACKED", filled=1)
    assert not await store.orders.update_status("H-CL-1", "SENT")
    rec = await store.orders.get("H-CL-1")
    assert rec is not None and rec.status == OrderStatus.FILLED and rec.filled == 2
    # mark_sent after a faster broker report keeps the report's status.
    rec = await store.orders.mark_sent("H-CL-1", order_id=3)
    assert rec.status == OrderStatus.FILLED and rec.order_id == 3


async def test_filled_never_decreases_and_fill_may_race_cancel(store: Store) -> None:
    await intent(store)
    await store.orders.update_status("H-CL-1", "ACKED", filled=1)
    await store.orders.update_status("H-CL-1", "ACKED", filled=0)  # out-of-order partial report
    rec = await store.orders.get("H-CL-1")
    assert rec is not None and rec.filled == 1
    await store.orders.update_status("H-CL-1", "CANCELLED", message="10148 cancel raced fill")
    assert await store.orders.update_status("H-CL-1", "FILLED", filled=2)
    rec = await store.orders.get("H-CL-1")
    assert rec is not None and rec.status == OrderStatus.FILLED and rec.message == "10148 cancel raced fill"


async def test_unknown_then_known(store: Store) -> None:
    await intent(store)
    await store.orders.mark_sent("H-CL-1")
    await store.orders.update_status("H-CL-1", "UNKNOWN", message="disconnected")
    assert [o.status for o in await store.orders.open_orders()] == [OrderStatus.UNKNOWN]
    assert await store.orders.update_status("H-CL-1", "ACKED")
    assert not await store.orders.update_status("H-CL-1", "INTENT")


async def test_duplicate_and_unknown_refs(store: Store) -> None:
    await intent(store)
    with pytest.raises(DuplicateOrderRefError, match="H-CL-1"):
        await intent(store)
    with pytest.raises(UnknownOrderError, match="nope"):
        await store.orders.update_status("nope", "ACKED")
    with pytest.raises(UnknownOrderError):
        await store.orders.mark_sent("nope")
    with pytest.raises(UnknownOrderError):
        await store.orders.set_perm_id("nope", 1)
    assert await store.orders.get("nope") is None
    assert await store.orders.by_perm_id(424242) is None


@pytest.mark.parametrize(
    "kw, msg",
    [({"action": "HOLD"}, "action"), ({"quantity": 0}, "quantity"), ({"quantity": -1}, "quantity")],
)
async def test_bad_intents_are_refused(store: Store, kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        await intent(store, **kw)
    assert await store.orders.recent() == []


async def test_queries_by_date_market_and_recent(store: Store, clock: ManualClock) -> None:
    await intent(store, "a", detail={"target": 2})
    clock.advance(timedelta(seconds=1))
    await intent(store, "b", market="ZO", symbol="ZO", action="SELL", trading_date=date(2026, 3, 3))
    clock.advance(timedelta(seconds=1))
    await intent(store, "c", parent_ref="a", purpose="reprice")
    await store.orders.set_perm_id("c", 9)
    assert [o.order_ref for o in await store.orders.for_trading_date(date(2026, 3, 2))] == ["a", "c"]
    assert [o.order_ref for o in await store.orders.for_trading_date(date(2026, 3, 3), "ZO")] == ["b"]
    assert [o.order_ref for o in await store.orders.open_orders("CL")] == ["a", "c"]
    assert [o.order_ref for o in await store.orders.recent(2)] == ["c", "b"]
    a = await store.orders.get("a")
    c = await store.orders.by_perm_id(9)
    assert a is not None and a.detail == {"target": 2}
    assert c is not None and c.parent_ref == "a" and c.purpose == "reprice"


def test_transition_table() -> None:
    S = OrderStatus
    assert can_move(S.INTENT, S.SENT) and can_move(S.SENT, S.ACKED) and can_move(S.ACKED, S.FILLED)
    assert not can_move(S.ACKED, S.SENT) and not can_move(S.FILLED, S.CANCELLED)
    assert not can_move(S.REJECTED, S.ACKED) and can_move(S.CANCELLED, S.FILLED)
    assert all(not can_move(s, S.INTENT) for s in S)


async def test_random_report_sequences_keep_the_invariants(store: Store) -> None:
    import random

    rng = random.Random(5)
    statuses = list(OrderStatus)
    for n in range(40):
        ref = f"r{n}"
        await intent(store, ref, quantity=3)
        prev = await store.orders.get(ref)
        assert prev is not None
        for _ in range(8):
            new = rng.choice(statuses)
            applied = await store.orders.update_status(ref, new, filled=rng.choice([None, 0, 1, 2, 3]))
            cur = await store.orders.get(ref)
            assert cur is not None
            assert applied == can_move(prev.status, new)
            assert cur.filled >= prev.filled  # never decreases
            if prev.status in (OrderStatus.FILLED, OrderStatus.REJECTED):
                assert cur.status == prev.status  # terminal stays terminal
            assert cur.status != OrderStatus.INTENT or prev.status == OrderStatus.INTENT
            prev = cur
