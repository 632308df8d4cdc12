"""RiskGate against a real SQLite file: approvals, every breaker, states, band, cap, restarts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import aiosqlite
import pytest

from risk_db import open_db
from hydra_engine.risk.breakers import BreakerName, BreakerPhase
from hydra_engine.risk.gate import RiskConfig, RiskGate
from hydra_engine.risk.intents import (
    AccountState,
    Approval,
    ApprovalError,
    Denial,
    OrderIntent,
    TradingState,
)

D0 = dt.date(2026, 11, 23)  # Monday
D1, D2, D3, D4 = (D0 + dt.timedelta(days=i) for i in range(1, 5))
CFG = RiskConfig(max_daily_loss_pct=2.0, max_drawdown_pct=10.0, max_position_value=1_000_000.0,
                 max_contracts=5, max_trade_loss_pct=1.0, price_band_bps=100.0, max_orders_per_day=3,
                 daily_loss_cooldown_days=1, drawdown_cooldown_days=2, position_size_cooldown_days=1,
                 trade_loss_cooldown_days=0)
_n = 0


def intent(direction: str = "BUY", qty: int = 1, limit: float = 70.0, mid: float = 70.0, **kw) -> OrderIntent:
    global _n
    _n += 1
    base = dict(market="CL", con_id=1, local_symbol="CLF7", direction=direction, qty=qty, limit_price=limit,
                mid_price=mid, order_ref=f"ref-{_n}", position_value=70_000.0 * qty, trade_loss=1_000.0)
    base.update(kw)
    return OrderIntent(**base)  # type: ignore[arg-type]


def acct(day: dt.date = D0, pnl: float = 0.0, eq: float = 1_000_000.0, peak: float = 1_000_000.0,
         pos: float = 0.0, stale: bool = False) -> AccountState:
    return AccountState(daily_pnl=pnl, current_equity=eq, peak_equity=peak, position_value=0.0,
                        current_position=pos, stale=stale, trading_date=day)


async def gate_on(conn: aiosqlite.Connection, cfg: RiskConfig = CFG) -> RiskGate:
    return await RiskGate.open(conn, cfg)


async def test_approval_is_bound_and_used_once(db) -> None:
    gate = await gate_on(db)
    i = intent()
    ok = gate.check(i, acct())
    assert isinstance(ok, Approval) and ok.intent is i and ok.covers(i) and not ok.used
    assert ok.trading_state is TradingState.ACTIVE and ok.trading_date == D0
    assert ok.consume() is i and ok.used
    with pytest.raises(ApprovalError, match="already used"):
        ok.consume()
    assert not ok.covers(intent())
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok.intent = intent(qty=5)  # type: ignore[misc]


def test_only_the_gate_can_mint_an_approval() -> None:
    with pytest.raises(ApprovalError, match="only be created by RiskGate"):
        Approval(intent(), TradingState.ACTIVE, D0)
    with pytest.raises(ApprovalError):
        Approval(intent(), TradingState.ACTIVE, D0, (), 1, object())


async def test_gate_denies_until_loaded(db) -> None:
    from hydra_engine.store.breakers_repo import BreakersRepo

    gate = RiskGate(CFG, BreakersRepo(db))
    d = gate.check(intent(), acct())
    assert isinstance(d, Denial) and d.codes == ("gate_not_ready",)
    await gate.load()
    assert isinstance(gate.check(intent(), acct()), Approval)


async def test_daily_loss_halts_then_reduces_then_recovers(db) -> None:
    gate = await gate_on(db)
    seen = []
    gate.add_listener(seen.append)
    d = gate.check(intent(), acct(pnl=-25_000.0, eq=975_000.0))  # 2.5% of opening equity 1,000,000
    assert isinstance(d, Denial) and "halted" in d.codes
    assert gate.trading_state is TradingState.HALTED
    assert gate.breaker_phase("daily_loss") is BreakerPhase.TRIGGERED
    assert seen and seen[0].name is BreakerName.DAILY_LOSS and seen[0].trading_state is TradingState.HALTED
    # HALTED: even a reducing order is refused (cancels never pass the gate)
    d = gate.check(intent("SELL"), acct(pnl=-25_000.0, eq=975_000.0, pos=2))
    assert isinstance(d, Denial) and d.codes[0] == "halted"
    # next trading day: COOLDOWN -> REDUCING: reducing allowed, increasing or flipping denied
    flat = acct(D1, pnl=0.0, eq=975_000.0, peak=1_000_000.0, pos=2)
    assert isinstance(gate.check(intent("SELL", qty=2), flat), Approval)
    d = gate.check(intent("BUY"), flat)
    assert isinstance(d, Denial) and d.codes == ("reducing",)
    d = gate.check(intent("SELL", qty=3), flat)  # would flip to short 1
    assert isinstance(d, Denial) and "reducing" in d.codes
    assert gate.trading_state is TradingState.REDUCING
    # cooldown of one trading day is over on D2
    assert isinstance(gate.check(intent("BUY"), acct(D2, eq=975_000.0)), Approval)
    assert gate.trading_state is TradingState.ACTIVE


async def test_drawdown_from_peak_reduces_for_cooldown(db) -> None:
    gate = await gate_on(db)
    assert isinstance(gate.check(intent(), acct(eq=910_000.0, peak=1_000_000.0)), Approval)  # 9% < 10%
    d = gate.check(intent(), acct(eq=895_000.0, peak=1_000_000.0))
    assert isinstance(d, Denial) and d.codes == ("reducing",)
    assert gate.breaker_phase(BreakerName.DRAWDOWN) is BreakerPhase.TRIGGERED
    assert "drawdown" in gate.snapshot().breakers[1].reason
    # the peak that counts is the larger of the persisted peak and equity
    assert gate.evaluate_account(acct(D1, eq=960_000.0, peak=1_000_000.0)) is TradingState.REDUCING
    assert gate.evaluate_account(acct(D2, eq=960_000.0, peak=1_000_000.0)) is TradingState.REDUCING
    assert gate.evaluate_account(acct(D3, eq=960_000.0, peak=1_000_000.0)) is TradingState.ACTIVE


async def test_position_size_denies_increasing_orders_only(db) -> None:
    gate = await gate_on(db)
    d = gate.check(intent("BUY", qty=2), acct(pos=4))  # 6 > max_contracts 5
    assert isinstance(d, Denial) and d.codes == ("position_size",)
    assert gate.trading_state is TradingState.REDUCING  # rest of the day: reduce only
    assert isinstance(gate.check(intent("SELL", qty=2, position_value=140_000.0), acct(pos=4)), Approval)
    d = gate.check(intent("BUY", position_value=1_500_000.0), acct(D1))
    assert isinstance(d, Denial) and d.codes == ("position_size",) and "notional" in d.reasons[0]
    # position_size COOLDOWN maps to ACTIVE: a fitting order passes on the next day
    assert isinstance(gate.check(intent("BUY"), acct(D2)), Approval)


async def test_single_trade_loss_denies_that_order_only(db) -> None:
    gate = await gate_on(db)
    d = gate.check(intent(trade_loss=10_001.0), acct())  # > 1% of 1,000,000
    assert isinstance(d, Denial) and d.codes == ("single_trade_loss",)
    assert gate.breaker_phase("single_trade_loss") is BreakerPhase.TRIGGERED
    assert gate.trading_state is TradingState.ACTIVE
    assert isinstance(gate.check(intent(trade_loss=9_000.0), acct()), Approval)
    gate.on_new_trading_day(D1)
    assert gate.breaker_phase("single_trade_loss") is BreakerPhase.ACTIVE


async def test_price_band_applies_to_reprices(db) -> None:
    gate = await gate_on(db)
    assert isinstance(gate.check(intent(limit=70.69, mid=70.0), acct()), Approval)  # 98.6 bps
    d = gate.check(intent(limit=70.71, mid=70.0, is_reprice=True), acct())  # 101 bps
    assert isinstance(d, Denial) and d.codes == ("price_band",)
    d = gate.check(intent("SELL", limit=69.2, mid=70.0, position_value=-70_000.0), acct())
    assert isinstance(d, Denial) and "price_band" in d.codes


async def test_daily_cap_counts_reprices_and_survives_restart(db_path: Path) -> None:
    conn = await open_db(db_path)
    gate = await gate_on(conn)
    assert isinstance(gate.check(intent(), acct()), Approval)
    assert isinstance(gate.check(intent(is_reprice=True), acct()), Approval)
    assert gate.orders_today == 2
    await gate.flush()
    await conn.close()
    conn = await open_db(db_path, migrate=False)  # restart: same file
    gate = await gate_on(conn)
    assert gate.orders_today == 2 and gate.trading_date == D0
    assert isinstance(gate.check(intent(), acct()), Approval)
    d = gate.check(intent(), acct())
    assert isinstance(d, Denial) and d.codes == ("daily_order_cap",)
    d = gate.check(intent(is_reprice=True), acct())
    assert isinstance(d, Denial) and d.codes == ("daily_order_cap",)
    assert isinstance(gate.check(intent(), acct(D1)), Approval)  # a new trading date, a new count
    await gate.flush()
    async with conn.execute("SELECT trading_date, orders, reprices FROM risk_order_counts ORDER BY 1") as cur:
        assert await cur.fetchall() == [(D0.isoformat(), 3, 1), (D1.isoformat(), 1, 0)]
    await conn.close()


async def test_reprices_outside_the_cap_when_configured(db) -> None:
    gate = await gate_on(db, dataclasses.replace(CFG, reprices_count_toward_cap=False, max_orders_per_day=1))
    assert isinstance(gate.check(intent(), acct()), Approval)
    for _ in range(3):
        assert isinstance(gate.check(intent(is_reprice=True), acct()), Approval)
    assert gate.orders_today == 1 and gate.snapshot().reprices_today == 3
    assert isinstance(gate.check(intent(), acct()), Denial)


async def test_breakers_survive_restart(db_path: Path) -> None:
    conn = await open_db(db_path)
    gate = await gate_on(conn)
    gate.check(intent(), acct(pnl=-30_000.0, eq=970_000.0))
    assert gate.trading_state is TradingState.HALTED
    await gate.flush()
    await conn.close()
    conn = await open_db(db_path, migrate=False)
    gate = await gate_on(conn)
    assert gate.trading_state is TradingState.HALTED
    assert gate.breaker_phase("daily_loss") is BreakerPhase.TRIGGERED
    gate.on_new_trading_day(D1)
    assert gate.trading_state is TradingState.REDUCING
    await gate.close()
    async with conn.execute("SELECT state, cooldown_remaining, triggered_at FROM breaker_state WHERE name='daily_loss'") as cur:
        assert await cur.fetchone() == ("COOLDOWN", 1, D0.isoformat())
    await conn.close()


async def test_stale_pnl_is_flagged_not_tripped(db) -> None:
    gate = await gate_on(db)
    ok = gate.check(intent(), acct(pnl=-50_000.0, eq=950_000.0, stale=True))
    assert isinstance(ok, Approval) and ok.warnings == ("daily_pnl_stale",)
    assert gate.breaker_phase("daily_loss") is BreakerPhase.ACTIVE
    assert gate.snapshot().daily_pnl_stale
    d = gate.check(intent(), acct(pnl=-50_000.0, eq=950_000.0, stale=False))
    assert isinstance(d, Denial) and gate.trading_state is TradingState.HALTED


@pytest.mark.parametrize(
    "ikw,akw,needle",
    [
        (dict(limit=float("nan")), {}, "limit_price=nan must be a finite price > 0"),
        (dict(limit=-1.0), {}, "limit_price=-1.0"),
        (dict(mid=0.0), {}, "mid_price=0.0"),
        (dict(mid=float("inf")), {}, "mid_price=inf"),
        (dict(trade_loss=-5.0), {}, "trade_loss=-5.0"),
        (dict(position_value=float("nan")), {}, "position_value=nan"),
        ({}, dict(eq=float("nan")), "current_equity=nan"),
        ({}, dict(eq=0.0), "current_equity=0.0 must be a finite amount > 0"),
        ({}, dict(pnl=float("nan")), "daily_pnl=nan"),
        ({}, dict(peak=-1.0), "peak_equity=-1.0"),
    ],
)
async def test_bad_input_is_a_clear_denial(db, ikw, akw, needle) -> None:
    gate = await gate_on(db)
    d = gate.check(intent(**ikw), acct(**akw))
    assert isinstance(d, Denial) and d.codes[0] == "bad_input"
    assert any(needle in r for r in d.reasons), d.reasons
    assert gate.trading_state is TradingState.ACTIVE and gate.orders_today == 0


def test_structurally_impossible_intents_raise() -> None:
    with pytest.raises(ValueError, match="direction='HOLD'"):
        intent("HOLD")
    with pytest.raises(ValueError, match="qty=0"):
        intent(qty=0)


def test_config_ranges_are_enforced_and_exposed() -> None:
    with pytest.raises(ValueError, match=r"risk.max_daily_loss_pct=0.0 out of range \[0.01, 100.0\]"):
        RiskConfig(max_daily_loss_pct=0.0)
    with pytest.raises(ValueError, match="risk.max_orders_per_day"):
        RiskConfig(max_orders_per_day=0)
    fields = {f.name: f.metadata.get("range") for f in dataclasses.fields(RiskConfig)}
    assert fields["price_band_bps"] == (1.0, 10_000.0) and fields["reprices_count_toward_cap"] is None


async def test_write_failure_fails_closed(db_path: Path) -> None:
    conn = await open_db(db_path)
    gate = await gate_on(conn)
    await conn.execute("DROP TABLE risk_order_counts")
    await conn.commit()
    assert isinstance(gate.check(intent(), acct()), Approval)  # decided in memory, write fails behind
    with pytest.raises(Exception, match="risk_order_counts"):
        await gate.flush()
    d = gate.check(intent(), acct())
    assert isinstance(d, Denial) and d.codes == ("risk_persistence",)
    d = await gate.check_durable(intent(), acct())
    assert isinstance(d, Denial)
    await conn.close()


async def test_through_the_store_when_present(tmp_path: Path) -> None:
    database = pytest.importorskip("hydra_engine.store.database")
    store = await database.Store.open_path(tmp_path / "hydra.db", "DU123", lock=False)
    try:
        gate = await RiskGate.open(store.conn, CFG, tx=store.tx)
        ok = await gate.check_durable(intent(), acct())
        assert isinstance(ok, Approval)
        async with store.conn.execute("SELECT orders FROM risk_order_counts") as cur:
            assert await cur.fetchone() == (1,)
    finally:
        await store.close()
