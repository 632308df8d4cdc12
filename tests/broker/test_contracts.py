"""Front-month selection and the roll window (pure logic over contract months)."""

from __future__ import annotations

import datetime as dt

import pytest

from hydra_engine.broker.contracts import (
    ContractMonth,
    business_days_before,
    parse_ib_date,
    select_active_month,
)
from hydra_engine.broker.errors import ContractNotFound


def month(con_id: int, local: str, last: dt.date) -> ContractMonth:
    return ContractMonth(
        con_id=con_id, symbol="CL", local_symbol=local, contract_month=last.strftime("%Y%m"),
        last_trade_date=last, exchange="NYMEX", currency="USD", multiplier=1000.0, min_tick=0.01,
    )


MONTHS = [
    month(3, "CLH7", dt.date(2027, 2, 19)),
    month(1, "CLF7", dt.date(2026, 12, 17)),
    month(2, "CLG7", dt.date(2027, 1, 20)),
]


def test_front_month_outside_roll_window() -> None:
    r = select_active_month("CL", MONTHS, dt.date(2026, 12, 1), roll_days=5)
    assert r.active.local_symbol == "CLF7"
    assert r.front.local_symbol == "CLF7"
    assert not r.in_roll_window
    assert r.roll_start == dt.date(2026, 12, 10)
    assert [m.local_symbol for m in r.months] == ["CLF7", "CLG7", "CLH7"]


def test_inside_roll_window_the_next_month_is_active() -> None:
    r = select_active_month("CL", MONTHS, dt.date(2026, 12, 10), roll_days=5)
    assert r.active.local_symbol == "CLG7"
    assert r.front.local_symbol == "CLF7"
    assert r.in_roll_window
    assert r.needs_roll(1) and not r.needs_roll(2)
    assert not r.needs_roll(999)  # not a month of this market


def test_day_before_roll_start_still_holds_front() -> None:
    r = select_active_month("CL", MONTHS, dt.date(2026, 12, 9), roll_days=5)
    assert r.active.con_id == 1


def test_holiday_calendar_moves_roll_start() -> None:
    holiday = dt.date(2026, 12, 16)
    start = business_days_before(dt.date(2026, 12, 17), 2, lambda d: d.weekday() < 5 and d != holiday)
    assert start == dt.date(2026, 12, 14)
    assert business_days_before(dt.date(2026, 12, 17), 2) == dt.date(2026, 12, 15)


def test_no_unexpired_month_is_a_clear_error() -> None:
    with pytest.raises(ContractNotFound, match="CL: no unexpired futures month listed on 2027-03-01"):
        select_active_month("CL", MONTHS, dt.date(2027, 3, 1), roll_days=5)


def test_all_months_in_roll_window_is_a_clear_error() -> None:
    with pytest.raises(ContractNotFound, match="roll window"):
        select_active_month("CL", MONTHS, dt.date(2027, 2, 18), roll_days=5)


def test_parse_ib_date_forms() -> None:
    assert parse_ib_date("20261217") == dt.date(2026, 12, 17)
    assert parse_ib_date("20261217 14:30 US/Central") == dt.date(2026, 12, 17)
    with pytest.raises(ValueError, match="not YYYYMMDD"):
        parse_ib_date("202612")
    with pytest.raises(ValueError, match="roll_days"):
        select_active_month("CL", MONTHS, dt.date(2026, 12, 1), roll_days=-1)
