"""Exchange calendar, expiry rules, listed months and conIds."""

from __future__ import annotations

import datetime as dt

import pytest

from hydra_engine.sim import calendar as cal
from hydra_engine.sim.catalog import DEFAULT_PRODUCTS, continuous_con_id, decode_con_id, make_month, month_con_id
from hydra_engine.sim.universe import SimMarketUniverse, build_universe

UTC = dt.timezone.utc
D = dt.date


@pytest.fixture(scope="module")
def universe() -> SimMarketUniverse:
    return build_universe(seed=7, symbols=["CL", "ZO"])


def test_holidays_by_rule() -> None:
    h2018 = cal.us_holidays(2018)
    for day in (D(2018, 1, 1), D(2018, 1, 15), D(2018, 2, 19), D(2018, 3, 30), D(2018, 5, 28),
                D(2018, 7, 4), D(2018, 9, 3), D(2018, 11, 22), D(2018, 12, 25)):
        assert day in h2018, day
    assert len(h2018) == 9
    assert D(2022, 6, 20) in cal.us_holidays(2022)  # Juneteenth (Sunday) observed Monday
    assert D(2021, 6, 18) not in cal.us_holidays(2021)  # not yet a holiday
    assert D(2021, 12, 24) in cal.us_holidays(2021)  # Christmas on Saturday -> Friday
    assert D(2021, 12, 31) not in cal.us_holidays(2021)  # New Year on Saturday is not moved back
    assert cal.easter(2024) == D(2024, 3, 31)
    assert cal.easter(2026) == D(2026, 4, 5)


def test_business_days() -> None:
    assert cal.is_business_day(D(2018, 3, 29))
    assert not cal.is_business_day(D(2018, 3, 30))  # Good Friday
    assert not cal.is_business_day(D(2018, 3, 31))  # Saturday
    assert cal.next_business_day(D(2018, 3, 29)) == D(2018, 4, 2)
    assert cal.previous_business_day(D(2018, 4, 2)) == D(2018, 3, 29)
    assert len(cal.business_days(D(2018, 1, 1), D(2018, 12, 31))) == 365 - 104 - 9


def test_cl_expiry_rule_matches_known_dates() -> None:
    # NYMEX CL: 3 business days before the 25th of the prior month (4 if the 25th is not one).
    assert cal.expiry_nymex_crude(2018, 4) == D(2018, 3, 20)
    assert cal.expiry_nymex_crude(2018, 12) == D(2018, 11, 19)  # Nov 25 2018 is a Sunday
    assert cal.expiry_nymex_crude(2019, 1) == D(2018, 12, 19)
    assert cal.expiry_nymex_crude(2020, 5) == D(2020, 4, 21)


def test_grain_expiry_is_business_day_before_the_15th() -> None:
    rule = cal.EXPIRY_RULES["bd_before_15"]
    assert rule(2018, 3) == D(2018, 3, 14)
    assert rule(2018, 7) == D(2018, 7, 13)  # 14th is a Saturday
    assert rule(2019, 12) == D(2019, 12, 13)


def test_session_bounds_and_trade_date_overnight_and_dst() -> None:
    hours = DEFAULT_PRODUCTS["CL"].spec.hours
    # Winter (CST = UTC-6): Monday's session opens Sunday 17:00 CT.
    o, c = cal.session_bounds(hours, D(2018, 1, 8))
    assert o == dt.datetime(2018, 1, 7, 23, 0, tzinfo=UTC)
    assert c == dt.datetime(2018, 1, 8, 22, 0, tzinfo=UTC)
    # Summer (CDT = UTC-5).
    o, c = cal.session_bounds(hours, D(2018, 7, 9))
    assert c == dt.datetime(2018, 7, 9, 21, 0, tzinfo=UTC)
    # Rolls at the close; Friday evening belongs to Monday.
    assert cal.trade_date(hours, dt.datetime(2018, 1, 8, 21, 59, tzinfo=UTC)) == D(2018, 1, 8)
    assert cal.trade_date(hours, dt.datetime(2018, 1, 8, 22, 0, tzinfo=UTC)) == D(2018, 1, 9)
    assert cal.trade_date(hours, dt.datetime(2018, 1, 12, 23, 30, tzinfo=UTC)) == D(2018, 1, 15 + 1)
    assert cal.last_completed_session(hours, dt.datetime(2018, 1, 9, 12, 0, tzinfo=UTC)) == D(2018, 1, 8)


def test_grain_session_closes_at_1320_ct() -> None:
    hours = DEFAULT_PRODUCTS["ZO"].spec.hours
    o, c = cal.session_bounds(hours, D(2018, 3, 1))
    assert c == dt.datetime(2018, 3, 1, 19, 20, tzinfo=UTC)
    assert o == dt.datetime(2018, 3, 1, 1, 0, tzinfo=UTC)  # 19:00 CT the evening before
    # A 14:00 CT decision falls after the close: it belongs to the next trade date.
    assert cal.trade_date(hours, dt.datetime(2018, 3, 1, 20, 0, tzinfo=UTC)) == D(2018, 3, 2)


def test_ib_trading_hours_text() -> None:
    text = cal.ib_hours(DEFAULT_PRODUCTS["CL"].spec.hours, D(2018, 1, 5), 3)
    assert text == "20180104:1700-20180105:1600;20180106:CLOSED;20180107:CLOSED"


def test_con_ids_are_stable_unique_and_decodable() -> None:
    ids = {month_con_id(p, y, m) for p in DEFAULT_PRODUCTS for y in range(2010, 2031) for m in range(1, 13)}
    assert len(ids) == len(DEFAULT_PRODUCTS) * 21 * 12
    assert all(0 < i < 2**31 for i in ids)
    assert month_con_id("CL", 2018, 4) == month_con_id("CL", 2018, 4)
    prefix, year, month = decode_con_id(month_con_id("ZO", 2019, 7))  # type: ignore[misc]
    assert (year, month) == (2019, 7)
    assert decode_con_id(continuous_con_id("ZO")) is None
    assert make_month(DEFAULT_PRODUCTS["CL"], 2026, 12).local_symbol == "CLZ6"


def test_listed_months_as_of_a_date(universe: SimMarketUniverse) -> None:
    as_of = D(2018, 3, 14)
    cl = universe.months("CL", as_of)
    assert len(cl) == 12
    assert cl[0].local_symbol == "CLJ8" and cl[0].last_trade_date == D(2018, 3, 20)
    assert [m.last_trade_date for m in cl] == sorted(m.last_trade_date for m in cl)
    zo = universe.months("ZO", as_of)
    assert [m.local_symbol for m in zo] == ["ZOH8", "ZOK8", "ZON8", "ZOU8", "ZOZ8"]
    assert zo[0].last_trade_date == as_of  # expiry day is still listed
    zo_next = universe.months("ZO", as_of + dt.timedelta(days=1))
    assert zo_next[0].local_symbol == "ZOK8" and zo_next[-1].local_symbol == "ZOH9"
    with_expired = universe.months("ZO", as_of + dt.timedelta(days=1), include_expired=True)
    assert with_expired[: len(zo_next)] == list(zo_next)
    expired = with_expired[len(zo_next):]
    assert expired[0].local_symbol == "ZOH8"
    assert all(m.last_trade_date < as_of + dt.timedelta(days=1) for m in expired)
    assert universe.month(zo[0].con_id) == zo[0]
    assert universe.month(123) is None
    assert universe.months("XX", as_of) == []


def test_session_bounds_refuses_closed_days(universe: SimMarketUniverse) -> None:
    with pytest.raises(ValueError, match="no session"):
        universe.session_bounds("CL", D(2018, 3, 31))
    assert universe.is_trading_day("CL", D(2018, 3, 29))
    assert not universe.is_trading_day("CL", D(2018, 3, 30))
