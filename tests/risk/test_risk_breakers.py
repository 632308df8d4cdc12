"""Breaker phases, cooldowns in trading days, and the explicit phase -> trading-state table."""

from __future__ import annotations

import datetime as dt

import pytest

from hydra_engine.markets import trading_days_between, weekdays
from hydra_engine.risk.breakers import (
    STATE_MAP,
    BreakerBoard,
    BreakerName,
    BreakerPhase,
)
from hydra_engine.risk.intents import TradingState
from hydra_engine.store.breakers_repo import BreakerRecord

MON = dt.date(2026, 11, 23)
DAYS = [MON + dt.timedelta(days=i) for i in range(14)]
A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def board(**cool: int) -> BreakerBoard:
    base = {n: 2 for n in BreakerName}
    base.update({BreakerName(k): v for k, v in cool.items()})
    return BreakerBoard(base)


def test_state_map_is_the_documented_table() -> None:
    P = BreakerPhase
    assert {(n.value, p.value): s for n, m in STATE_MAP.items() for p, s in m.items()} == {
        ("daily_loss", "ACTIVE"): A, ("daily_loss", "TRIGGERED"): H, ("daily_loss", "COOLDOWN"): R,
        ("drawdown", "ACTIVE"): A, ("drawdown", "TRIGGERED"): R, ("drawdown", "COOLDOWN"): R,
        ("position_size", "ACTIVE"): A, ("position_size", "TRIGGERED"): R, ("position_size", "COOLDOWN"): A,
        ("single_trade_loss", "ACTIVE"): A, ("single_trade_loss", "TRIGGERED"): A,
        ("single_trade_loss", "COOLDOWN"): A,
    }
    assert all(m[P.ACTIVE] is A for m in STATE_MAP.values())


def test_daily_loss_full_cycle_counts_trading_days() -> None:
    b = board(daily_loss=2)
    b.on_new_trading_day(DAYS[0])
    t = b.trip(BreakerName.DAILY_LOSS, DAYS[0], "daily_loss: -3%")
    assert t is not None and t.tripped and t.trading_state is H
    assert b.trip(BreakerName.DAILY_LOSS, DAYS[0], "again") is None  # already triggered today
    assert b.record(BreakerName.DAILY_LOSS).reason == "daily_loss: -3%"
    [t1] = b.on_new_trading_day(DAYS[1])
    assert (t1.old, t1.new, b.trading_state()) == (BreakerPhase.TRIGGERED, BreakerPhase.COOLDOWN, R)
    assert b.record(BreakerName.DAILY_LOSS).cooldown_remaining == 2
    assert b.on_new_trading_day(DAYS[1]) == []  # idempotent for a day already seen
    assert b.on_new_trading_day(DAYS[2]) == [] and b.trading_state() is R
    [t3] = b.on_new_trading_day(DAYS[3])
    assert (t3.new, t3.trading_state, b.trading_state()) == (BreakerPhase.ACTIVE, A, A)


def test_weekend_counts_as_no_trading_days_and_calendar_can_say_more() -> None:
    fri, mon = dt.date(2026, 11, 27), dt.date(2026, 11, 30)
    assert trading_days_between(weekdays, fri, mon) == 1
    assert trading_days_between(weekdays, MON, MON + dt.timedelta(days=14)) == 10
    b = board(drawdown=2)
    b.on_new_trading_day(fri)
    b.trip(BreakerName.DRAWDOWN, fri, "dd")
    b.on_new_trading_day(mon)
    assert b.phase(BreakerName.DRAWDOWN) is BreakerPhase.COOLDOWN  # one trading day later
    b2 = board(drawdown=2)
    b2.on_new_trading_day(fri)
    b2.trip(BreakerName.DRAWDOWN, fri, "dd")
    b2.on_new_trading_day(mon + dt.timedelta(days=7), trading_days=3)  # a long gap: 3 trading days
    assert b2.phase(BreakerName.DRAWDOWN) is BreakerPhase.ACTIVE


def test_breach_during_cooldown_retriggers_and_restarts_count() -> None:
    b = board(drawdown=3)
    b.on_new_trading_day(DAYS[0])
    b.trip(BreakerName.DRAWDOWN, DAYS[0], "dd 11%")
    b.on_new_trading_day(DAYS[1])
    b.on_new_trading_day(DAYS[2])
    assert b.record(BreakerName.DRAWDOWN).cooldown_remaining == 2
    t = b.trip(BreakerName.DRAWDOWN, DAYS[2], "dd 12%")
    assert t is not None and t.old is BreakerPhase.COOLDOWN
    rec = b.record(BreakerName.DRAWDOWN)
    assert (rec.state, rec.cooldown_remaining, rec.triggered_at) == ("TRIGGERED", 3, DAYS[2])


def test_zero_cooldown_returns_to_active_next_day() -> None:
    b = board(single_trade_loss=0, position_size=0)
    b.on_new_trading_day(DAYS[0])
    b.trip(BreakerName.POSITION_SIZE, DAYS[0], "too big")
    assert b.trading_state() is R
    b.trip(BreakerName.SINGLE_TRADE_LOSS, DAYS[0], "too risky")
    b.on_new_trading_day(DAYS[1])
    assert b.phase(BreakerName.POSITION_SIZE) is BreakerPhase.ACTIVE
    assert b.phase(BreakerName.SINGLE_TRADE_LOSS) is BreakerPhase.ACTIVE


def test_strictest_state_wins_and_reset() -> None:
    b = board()
    b.on_new_trading_day(DAYS[0])
    b.trip(BreakerName.DRAWDOWN, DAYS[0], "dd")
    assert b.trading_state() is R
    b.trip(BreakerName.DAILY_LOSS, DAYS[0], "loss")
    assert b.trading_state() is H
    t = b.reset(BreakerName.DAILY_LOSS)
    assert t is not None and b.trading_state() is R
    assert {r.name for r in b.take_dirty()} == {"daily_loss", "drawdown", "position_size", "single_trade_loss"}
    assert b.take_dirty() == []


def test_records_round_trip_and_bad_values() -> None:
    rec = BreakerRecord("daily_loss", "COOLDOWN", DAYS[0], 1, "x", DAYS[1])
    b = BreakerBoard({n: 1 for n in BreakerName}, [rec, BreakerRecord("retired_breaker")])
    assert b.trading_state() is R
    with pytest.raises(ValueError, match="state='BROKEN'"):
        BreakerRecord("daily_loss", "BROKEN")
    with pytest.raises(ValueError, match=r"cooldown_days\[drawdown\]"):
        BreakerBoard({BreakerName.DAILY_LOSS: 1})
