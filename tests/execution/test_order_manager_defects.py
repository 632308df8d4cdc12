"""Issue 12, defects 4 and 10, against the embedded exchange with the real gate, store and journal.

4: a reversal in REDUCING state is two legs: the flattening leg passes, the opening leg is denied.
10: a fill journals the contract month the order named (CLQ8 -> 201808), not its last-trade month.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from hydra_engine.markets import CATALOG
from hydra_engine.risk.intents import AccountState, OrderIntent, TradingState
from test_order_manager_sim import AGGRESSIVE, IN_SESSION, Rig, rig

# a Tuesday in late June 2018: CL's active month is the August contract (CLQ8)
JUNE_SESSION = dt.datetime(2018, 6, 26, 15, 0, tzinfo=dt.UTC)


async def _trip_position_size(r: Rig) -> None:
    """An oversized increasing order trips the position-size breaker: the gate turns REDUCING."""
    m = (await r.gw.resolve_contract(CATALOG["CL"])).active
    q = await r.gw.get_quote(m)
    intent = OrderIntent(market="CL", con_id=m.con_id, local_symbol=m.local_symbol, direction="BUY", qty=5,
                         limit_price=q.mid, mid_price=q.mid, order_ref="HY-trip", position_value=q.mid * 1000,
                         trade_loss=1.0)
    r.gate.check(intent, AccountState(daily_pnl=0.0, current_equity=1e6, peak_equity=1e6, current_position=1.0))
    assert r.gate.trading_state is TradingState.REDUCING


async def _hold_long(r: Rig) -> None:
    res = await r.drive(asyncio.create_task(r.om.move_to_target(CATALOG["CL"], 1)))
    assert res.filled == 1


async def _position(r: Rig) -> float:
    return sum(p.quantity for p in await r.gw.get_positions() if p.symbol == "CL")


RISK: dict[str, Any] = {"max_trade_loss_pct": 10.0, "max_contracts": 2}


async def test_reversal_in_reducing_flattens_and_denies_the_opening_leg(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=IN_SESSION, risk=RISK) as r:
        await _hold_long(r)
        await _trip_position_size(r)
        res = await r.drive(asyncio.create_task(r.om.move_to_target(CATALOG["CL"], -1)))
        assert await _position(r) == 0  # the losing long is closed
        assert [(leg.direction, leg.requested) for leg in res.legs] == [("SELL", 1), ("SELL", 1)]
        flatten, opening = res.legs
        assert flatten.status == "FILLED" and flatten.filled == 1
        assert opening.status == "DENIED" and opening.filled == 0
        assert any(reason.startswith("reducing") for reason in opening.reasons), opening.reasons


async def test_reversal_in_active_ends_at_the_target(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=IN_SESSION, risk=RISK) as r:
        await _hold_long(r)
        res = await r.drive(asyncio.create_task(r.om.move_to_target(CATALOG["CL"], -1)))
        assert await _position(r) == -1
        assert [(leg.direction, leg.requested, leg.status) for leg in res.legs] == [
            ("SELL", 1, "FILLED"), ("SELL", 1, "FILLED")]


async def test_fill_journals_the_contract_month_the_order_named(tmp_path, sim_universe) -> None:
    async with rig(tmp_path, sim_universe, patience=AGGRESSIVE, start=JUNE_SESSION, risk=RISK) as r:
        active = (await r.gw.resolve_contract(CATALOG["CL"])).active
        assert active.local_symbol == "CLQ8" and active.contract_month == "201808"
        await _hold_long(r)
        fills = await r.fills()
        assert [f.contract_month for f in fills] == ["201808"]


def test_month_code_of_the_local_symbol_is_read_against_the_last_trade_year() -> None:
    from hydra_engine.execution.order_adapters import month_of_local_symbol

    assert month_of_local_symbol("CLQ8", "201807") == "201808"
    assert month_of_local_symbol("CLF9", "201812") == "201901"  # January contract trades out in December
    assert month_of_local_symbol("ZOZ8", "201812") == "201812"
    assert month_of_local_symbol("CLF20", "201912") == "202001"
    assert month_of_local_symbol("CL", "201807") is None


def test_a_trade_that_ended_while_the_session_was_down_reads_like_a_trade() -> None:
    """The stand-in the order manager binds when a working order ended while the session was down
    (soak: the ack came just before a drop, the order filled while away) is read as a Trade: the
    ack's record reads its order's permId, and its status and filled quantity settle the order."""
    import ib_async

    from hydra_engine.execution.order_records import ClosedTrade

    closed = ClosedTrade(1.0)
    read_by_the_engine = ("orderId", "orderRef", "permId")
    real = ib_async.Order()
    for name in read_by_the_engine:
        assert type(getattr(closed.order, name)) is type(getattr(real, name)), name
    assert int(closed.order.permId or 0) == 0  # what the ack records: no permId known
    assert closed.isDone() and closed.orderStatus.filled == 1.0 and closed.orderStatus.status == "Cancelled"
