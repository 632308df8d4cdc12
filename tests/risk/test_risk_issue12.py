"""Issue 12, risk defects 5-8 against a real SQLite file (and, for the wiring, the real Engine):

5. breaker cooldowns count exchange trading days (2018-01-15, MLK day, is no cooldown day);
6. one ``k_sigma``: the gate's single-trade-loss check uses ``execution.k_sigma``;
7. an account-wide gross notional limit, shown in the gate's snapshot;
8. after the drawdown breaker's cooldown: re-entry at reduced size, no daily re-trip on the same
   drawdown, a new trip only when it worsens past the trip level plus a margin; journalled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import aiosqlite
from risk_db import open_db

from hydra_engine.broker.contracts import ContractMonth
from hydra_engine.config import load_settings
from hydra_engine.execution.order_adapters import RiskAdapter, RiskInputs
from hydra_engine.markets import MarketConfig, any_market_trades, trading_days_between
from hydra_engine.risk.breakers import (
    BreakerBoard,
    BreakerName,
    BreakerPhase,
    BreakerTransition,
)
from hydra_engine.risk.gate import RiskConfig, RiskGate
from hydra_engine.risk.intents import (
    AccountState,
    Approval,
    Denial,
    OrderIntent,
    TradingState,
)

CL = MarketConfig("CL", "NYMEX")
ZO = MarketConfig("ZO", "CBOT", decision_time=dt.time(14, 0))
CALENDAR = any_market_trades((CL, ZO))
FRI, MLK, TUE, WED = (dt.date(2018, 1, d) for d in (12, 15, 16, 17))
CFG = RiskConfig(max_daily_loss_pct=2.0, max_drawdown_pct=10.0, max_position_value=1_000_000.0,
                 max_contracts=4, max_trade_loss_pct=1.0, price_band_bps=100.0, max_orders_per_day=40,
                 daily_loss_cooldown_days=1, drawdown_cooldown_days=2, position_size_cooldown_days=1,
                 trade_loss_cooldown_days=0, max_gross_exposure=300_000.0, reentry_size_fraction=0.5,
                 drawdown_retrip_margin_pct=1.0)
_n = 0


def intent(direction: str = "BUY", qty: int = 1, **kw: Any) -> OrderIntent:
    global _n
    _n += 1
    base: dict[str, Any] = dict(market="CL", con_id=1, local_symbol="CLH8", direction=direction, qty=qty,
                                limit_price=70.0, mid_price=70.0, order_ref=f"i12-{_n}",
                                position_value=70_000.0 * qty * (1 if direction == "BUY" else -1),
                                trade_loss=1_000.0)
    base.update(kw)
    return OrderIntent(**base)


def acct(day: dt.date, pnl: float = 0.0, eq: float = 1_000_000.0, peak: float = 1_000_000.0,
         pos: float = 0.0, gross: float = 0.0) -> AccountState:
    return AccountState(daily_pnl=pnl, current_equity=eq, peak_equity=peak, position_value=gross,
                        current_position=pos, trading_date=day)


async def gate_on(conn: aiosqlite.Connection, cfg: RiskConfig = CFG, **kw: Any) -> RiskGate:
    return await RiskGate.open(conn, cfg, is_trading_day=CALENDAR, **kw)


# ---------------------------------------------------------------- 5. cooldowns in exchange trading days


def test_one_trading_day_count_knows_the_exchange_holiday() -> None:
    assert not CALENDAR(MLK) and CALENDAR(FRI) and CALENDAR(TUE)
    assert trading_days_between(CALENDAR, FRI, TUE) == 1 == trading_days_between(CL, FRI, TUE)
    assert trading_days_between(CALENDAR, FRI, MLK) == 0


def test_board_counts_cooldown_on_the_exchange_calendar() -> None:
    b = BreakerBoard({n: 1 for n in BreakerName}, is_trading_day=CALENDAR)
    b.on_new_trading_day(FRI)
    b.trip(BreakerName.DAILY_LOSS, FRI, "daily_loss: -3%")
    assert b.on_new_trading_day(MLK) == []  # a holiday ticks nothing
    [t] = b.on_new_trading_day(TUE)
    assert (t.old, t.new, b.trading_state()) == (BreakerPhase.TRIGGERED, BreakerPhase.COOLDOWN, TradingState.REDUCING)
    [t] = b.on_new_trading_day(WED)
    assert t.new is BreakerPhase.ACTIVE and b.trading_state() is TradingState.ACTIVE


async def test_daily_loss_tripped_friday_reduces_on_the_next_real_trading_day(db) -> None:
    gate = await gate_on(db)
    d = gate.check(intent(), acct(FRI, pnl=-25_000.0, eq=975_000.0))
    assert isinstance(d, Denial) and gate.trading_state is TradingState.HALTED
    # a cycle or status call dated on the holiday must not spend the cooldown
    assert gate.evaluate_account(acct(MLK, eq=975_000.0, peak=1_000_000.0)) is TradingState.HALTED
    tue = acct(TUE, eq=975_000.0, peak=1_000_000.0, pos=2)
    assert gate.breaker_phase(BreakerName.DAILY_LOSS) is BreakerPhase.TRIGGERED
    assert isinstance(gate.check(intent("SELL", qty=2), tue), Approval)  # REDUCING on Tuesday 01-16
    d = gate.check(intent("BUY"), tue)
    assert isinstance(d, Denial) and d.codes == ("reducing",)
    assert gate.breaker_phase(BreakerName.DAILY_LOSS) is BreakerPhase.COOLDOWN
    assert gate.evaluate_account(acct(WED, eq=975_000.0)) is TradingState.ACTIVE
    await gate.close()


async def test_engine_gate_uses_the_markets_calendar_and_execution_k_sigma(tmp_path: Path, sim_universe: Any) -> None:
    from hydra_engine.engine import Engine

    eng = Engine(load_settings(None, {"execution.k_sigma": 1.0}), data_dir=tmp_path, universe=sim_universe,
                 agent=False)
    await eng.start()
    try:
        gate = eng.risk_gate
        assert gate.k_sigma == 1.0 and gate.snapshot().k_sigma == 1.0
        assert not gate.is_trading_day(MLK) and gate.is_trading_day(TUE)
        assert gate.snapshot().max_gross_exposure == RiskConfig().max_gross_exposure
    finally:
        await eng.stop()


# ---------------------------------------------------------------- 6. one k_sigma


def test_single_trade_loss_uses_the_gates_k_sigma() -> None:
    # one-sigma loss 6,000; limit 1 % of 1,000,000 = 10,000: passes at k=1, not at k=3
    one = RiskGate(CFG, k_sigma=1.0, is_trading_day=CALENDAR)
    assert isinstance(one.check(intent(sigma_loss=6_000.0, trade_loss=18_000.0), acct(FRI)), Approval)
    three = RiskGate(CFG, k_sigma=3.0, is_trading_day=CALENDAR)
    d = three.check(intent(sigma_loss=6_000.0, trade_loss=18_000.0), acct(FRI))
    assert isinstance(d, Denial) and d.codes == ("single_trade_loss",) and "k_sigma 3" in d.reasons[0]
    assert "18,000.00" in d.reasons[0]


def test_order_path_adapter_hands_the_gate_the_one_sigma_loss() -> None:
    """The order manager's risk inputs (trade loss computed at 3 sigma) meets a gate at k=1: approved."""
    gate = RiskGate(CFG, k_sigma=1.0, is_trading_day=CALENDAR)
    month = ContractMonth(con_id=1, symbol="CL", local_symbol="CLH8", contract_month="201803",
                          last_trade_date=dt.date(2018, 2, 20), exchange="NYMEX", currency="USD",
                          multiplier=1000.0, min_tick=0.01)
    risk = RiskInputs(adv=10_000.0, mid_price=70.0, daily_pnl=0.0, peak_equity=1_000_000.0,
                      current_equity=1_000_000.0, position_value=70_000.0, trade_loss=3 * 4.0 * 1000.0,
                      current_position=0.0, sigma=4.0, trading_date=FRI, stale=False)
    decision = RiskAdapter(gate).check(order_ref="i12-adapter", month=month, side="BUY", qty=1, limit=70.0,
                                       risk=risk, reducing=False)
    assert isinstance(decision, Approval), getattr(decision, "reasons", None)
    assert decision.intent.sigma_loss == 4_000.0


# ---------------------------------------------------------------- 7. gross exposure


async def test_gross_exposure_is_account_wide_and_in_the_snapshot(db) -> None:
    gate = await gate_on(db)
    assert gate.evaluate_account(acct(FRI, gross=250_000.0)) is TradingState.ACTIVE
    snap = gate.snapshot()
    assert (snap.gross_exposure, snap.max_gross_exposure) == (250_000.0, 300_000.0)
    # per market the order is fine (1 contract, 70,000), account-wide it is not
    d = gate.check(intent(), acct(FRI, gross=250_000.0))
    assert isinstance(d, Denial) and d.codes == ("gross_exposure",)
    assert "320,000.00" in d.reasons[0] and "max_gross_exposure 300,000.00" in d.reasons[0]
    assert gate.trading_state is TradingState.ACTIVE  # no breaker trips: only that order is denied
    a = gate.check(intent(), acct(FRI, gross=200_000.0))
    assert isinstance(a, Approval) and gate.snapshot().gross_exposure == 250_000.0  # as of the account step
    # reducing, or a flip that adds no gross, passes even above the limit
    assert isinstance(gate.check(intent("SELL", position_value=70_000.0), acct(FRI, pos=2, gross=350_000.0)), Approval)
    flip = gate.check(intent("SELL", qty=2, position_value=-70_000.0), acct(FRI, pos=1, gross=290_000.0))
    assert isinstance(flip, Approval)
    await gate.close()


def test_gross_exposure_setting_has_a_range() -> None:
    import pytest

    with pytest.raises(ValueError, match="max_gross_exposure"):
        RiskConfig(max_gross_exposure=-1.0)
    with pytest.raises(ValueError, match="reentry_size_fraction"):
        RiskConfig(reentry_size_fraction=1.5)


# ---------------------------------------------------------------- 8. drawdown after a halt


DD0 = dt.date(2018, 3, 5)  # Monday
DD = [DD0 + dt.timedelta(days=i) for i in range(0, 21) if (DD0 + dt.timedelta(days=i)).weekday() < 5]


async def test_drawdown_reenters_at_reduced_size_and_retrips_only_when_worse(db_path: Path) -> None:
    conn = await open_db(db_path)
    gate = await gate_on(conn)
    seen: list[BreakerTransition] = []
    gate.add_listener(seen.append)
    dd = BreakerName.DRAWDOWN
    assert gate.evaluate_account(acct(DD[0], eq=880_000.0)) is TradingState.REDUCING  # 12 % >= 10 %
    assert gate.breaker_phase(dd) is BreakerPhase.TRIGGERED
    gate.evaluate_account(acct(DD[1], eq=880_000.0))  # COOLDOWN, 2 days
    gate.evaluate_account(acct(DD[2], eq=880_000.0))
    assert gate.trading_state is TradingState.REDUCING
    # cooldown over: ACTIVE in re-entry, not tripped again by the same, unchanged drawdown
    assert gate.evaluate_account(acct(DD[3], eq=880_000.0)) is TradingState.ACTIVE
    assert gate.breaker_phase(dd) is BreakerPhase.ACTIVE and gate.size_fraction == 0.5
    back = [t for t in seen if t.name is dd and t.new is BreakerPhase.ACTIVE]
    assert back and back[-1].reason.startswith("reentry:")
    snap = gate.snapshot()
    assert snap.size_fraction == 0.5 and snap.trading_state is TradingState.ACTIVE
    # reduced size: 2 of max_contracts 4 is fine, 3 is denied without tripping position_size
    assert isinstance(gate.check(intent(qty=2), acct(DD[3], eq=880_000.0)), Approval)
    d = gate.check(intent(qty=1), acct(DD[3], eq=880_000.0, pos=2))
    assert isinstance(d, Denial) and d.codes == ("reentry_size",)
    assert gate.breaker_phase(BreakerName.POSITION_SIZE) is BreakerPhase.ACTIVE
    # the next days, same drawdown (and a little worse, within the 1-point margin): no re-trip
    assert gate.evaluate_account(acct(DD[4], eq=880_000.0)) is TradingState.ACTIVE
    assert gate.evaluate_account(acct(DD[5], eq=872_000.0)) is TradingState.ACTIVE  # 12.8 % < 12 % + 1
    await gate.flush()
    await conn.close()
    # a restart keeps the re-entry and its trip level
    conn = await open_db(db_path, migrate=False)
    gate = await gate_on(conn)
    gate.add_listener(seen.append)
    assert gate.size_fraction == 0.5 and gate.trading_state is TradingState.ACTIVE
    # worse than the trip level plus the margin: tripped again, journalled with the new level
    assert gate.evaluate_account(acct(DD[6], eq=865_000.0)) is TradingState.REDUCING  # 13.5 % > 13 %
    trip = seen[-1]
    assert trip.name is dd and trip.tripped and "worsened after its trip" in trip.reason
    for day in DD[7:10]:
        gate.evaluate_account(acct(day, eq=865_000.0))
    assert gate.trading_state is TradingState.ACTIVE and gate.size_fraction == 0.5  # re-entry at 13.5 %
    assert gate.evaluate_account(acct(DD[10], eq=865_000.0)) is TradingState.ACTIVE
    # recovered under the limit: full size again, journalled
    assert gate.evaluate_account(acct(DD[11], eq=920_000.0)) is TradingState.ACTIVE
    assert gate.size_fraction == 1.0 and "recovered" in seen[-1].reason
    assert isinstance(gate.check(intent(qty=4), acct(DD[11], eq=920_000.0)), Approval)
    # a fresh breach from there trips at the limit as before
    assert gate.evaluate_account(acct(DD[12], eq=899_000.0)) is TradingState.REDUCING
    await gate.close()
    await conn.close()


async def test_operator_reset_ends_reentry(db) -> None:
    gate = await gate_on(db, dataclasses.replace(CFG, drawdown_cooldown_days=0))
    gate.evaluate_account(acct(DD[0], eq=880_000.0))
    gate.evaluate_account(acct(DD[1], eq=880_000.0))
    assert gate.trading_state is TradingState.ACTIVE and gate.size_fraction == 0.5
    t = gate.reset_breaker(BreakerName.DRAWDOWN)
    assert t is not None and t.reason == "operator reset" and gate.size_fraction == 1.0
    await gate.close()


def test_reentry_fraction_scales_the_targets_contract_cap() -> None:
    from hydra_engine.risk.sizing import reduced_cap

    assert [reduced_cap(n, 0.5) for n in (0, 1, 2, 5, 10)] == [0, 1, 1, 2, 5]
    assert reduced_cap(4, 1.0) == 4 and reduced_cap(4, 0.0) == 0
