"""Market calendar: US exchange holidays by rule and decision times across DST."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from hydra_engine.markets import (
    CATALOG,
    DEFAULT_MARKETS,
    MarketConfig,
    add_trading_days,
    decision_at,
    decisions_between,
    easter_sunday,
    find_market,
    is_trading_day,
    last_decision_at_or_before,
    market_from_catalog,
    next_decision_after,
    next_trading_day,
    previous_trading_day,
    trading_days_between,
    us_exchange_holidays,
)

CL = CATALOG["CL"]
ZO = CATALOG["ZO"]  # decides at 14:00 Chicago time
UTC = timezone.utc


def test_holidays_2024_and_2021() -> None:
    assert us_exchange_holidays(2024) == {
        date(2024, 1, 1), date(2024, 1, 15), date(2024, 2, 19), date(2024, 3, 29), date(2024, 5, 27),
        date(2024, 6, 19), date(2024, 7, 4), date(2024, 9, 2), date(2024, 11, 28), date(2024, 12, 25),
    }
    h21 = us_exchange_holidays(2021)
    assert date(2021, 12, 24) in h21  # Christmas on Saturday -> Friday
    assert date(2021, 6, 18) not in h21  # Juneteenth only from 2022
    assert date(2021, 7, 5) in h21  # July 4th on Sunday -> Monday
    assert date(2021, 12, 31) not in h21  # New Year 2022 on Saturday is not observed
    assert date(2022, 6, 20) in us_exchange_holidays(2022)  # Juneteenth on Sunday -> Monday


def test_easter() -> None:
    assert [easter_sunday(y) for y in (2024, 2025, 2026, 2038)] == [
        date(2024, 3, 31), date(2025, 4, 20), date(2026, 4, 5), date(2038, 4, 25)]


def test_trading_days() -> None:
    assert is_trading_day(CL, date(2026, 3, 2))
    assert not is_trading_day(CL, date(2026, 3, 7))  # Saturday
    assert not is_trading_day(CL, date(2026, 4, 3))  # Good Friday 2026
    assert next_trading_day(CL, date(2026, 4, 2)) == date(2026, 4, 6)
    assert previous_trading_day(CL, date(2026, 4, 6)) == date(2026, 4, 2)
    assert trading_days_between(CL, date(2026, 4, 2), date(2026, 4, 6)) == 1
    assert trading_days_between(CL, date(2026, 3, 2), date(2026, 3, 2)) == 0
    assert trading_days_between(CL, date(2026, 3, 2), date(2026, 3, 9)) == 5
    assert add_trading_days(CL, date(2026, 4, 2), 1) == date(2026, 4, 6)
    assert add_trading_days(CL, date(2026, 4, 6), -2) == date(2026, 4, 1)
    n_2026 = sum(is_trading_day(CL, date(2026, 1, 1) + timedelta(days=i)) for i in range(365))
    assert n_2026 == 251


def test_decision_times_follow_dst() -> None:
    # 14:00 Chicago is 20:00 UTC in winter (CST) and 19:00 UTC in summer (CDT).
    assert decision_at(ZO, date(2026, 3, 6)) == datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    assert decision_at(ZO, date(2026, 3, 9)) == datetime(2026, 3, 9, 19, 0, tzinfo=UTC)


def test_next_decision_after() -> None:
    friday_before = datetime(2026, 3, 6, 19, 59, tzinfo=UTC)
    assert next_decision_after(ZO, friday_before) == datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    at = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    assert next_decision_after(ZO, at) == datetime(2026, 3, 9, 19, 0, tzinfo=UTC)  # strictly after
    # Thursday before Good Friday -> Monday.
    assert next_decision_after(ZO, datetime(2026, 4, 2, 21, 0, tzinfo=UTC)).date() == date(2026, 4, 6)
    with pytest.raises(ValueError, match="naive"):
        next_decision_after(ZO, datetime(2026, 3, 6, 12, 0))


def test_last_decision_and_range() -> None:
    d, t = last_decision_at_or_before(ZO, datetime(2026, 3, 8, 12, 0, tzinfo=UTC))  # Sunday
    assert d == date(2026, 3, 6) and t == datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    d, t = last_decision_at_or_before(ZO, datetime(2026, 3, 9, 19, 0, tzinfo=UTC))
    assert d == date(2026, 3, 9)
    got = decisions_between(ZO, datetime(2026, 3, 6, 20, 0, tzinfo=UTC), datetime(2026, 3, 13, 23, 0, tzinfo=UTC))
    assert [g[0] for g in got] == [date(2026, 3, d) for d in (9, 10, 11, 12, 13)]
    assert all(t.tzinfo == UTC for _, t in got)


def test_market_config_validation_and_catalog() -> None:
    assert [m.symbol for m in DEFAULT_MARKETS] == ["CL", "ZO"]
    for m in CATALOG.values():
        assert m.session_close < m.decision_time  # today's bar is complete when deciding
    assert CL.decision_time == time(16, 15) and CL.session_close == time(16, 0)
    with pytest.raises(ValueError, match="time_zone 'Mars/Base'"):
        MarketConfig(symbol="CL", exchange="NYMEX", time_zone="Mars/Base")
    with pytest.raises(ValueError, match="currency"):
        MarketConfig(symbol="CL", exchange="NYMEX", currency="DOLLARS")
    with pytest.raises(ValueError, match="symbol"):
        MarketConfig(symbol="C L", exchange="NYMEX")
    assert market_from_catalog("ZO", max_contracts=5).max_contracts == 5
    with pytest.raises(KeyError, match="not in the catalogue"):
        market_from_catalog("XX")
    assert find_market(DEFAULT_MARKETS, "ZO").exchange == "CBOT"
    with pytest.raises(KeyError, match="configured: CL, ZO"):
        find_market(DEFAULT_MARKETS, "LBR")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)),
    st.sampled_from(sorted(CATALOG)),
)
def test_next_decision_is_the_first_one_after(t: datetime, symbol: str) -> None:
    m = CATALOG[symbol]
    nxt = next_decision_after(m, t)
    day = nxt.astimezone(m.zone).date()
    assert nxt > t and is_trading_day(m, day)
    assert nxt.astimezone(m.zone).time() == m.decision_time
    prev_day, prev_t = last_decision_at_or_before(m, nxt - timedelta(microseconds=1))
    assert prev_t <= t  # nothing was skipped in between
    assert next_decision_after(m, prev_t) == nxt


def test_trading_date_rolls_at_the_session_close() -> None:
    from hydra_engine.markets import trading_date_at

    zo = CATALOG["ZO"]
    # 15:59 CT Friday is still Friday's session for CL; 16:00 belongs to Monday.
    assert trading_date_at(CL, datetime(2026, 3, 6, 21, 59, tzinfo=UTC)) == date(2026, 3, 6)
    assert trading_date_at(CL, datetime(2026, 3, 6, 22, 0, tzinfo=UTC)) == date(2026, 3, 9)
    assert trading_date_at(CL, datetime(2026, 3, 8, 12, 0, tzinfo=UTC)) == date(2026, 3, 9)  # Sunday
    assert trading_date_at(CL, datetime(2026, 4, 3, 15, 0, tzinfo=UTC)) == date(2026, 4, 6)  # Good Friday
    # Oats close at 13:20 CT, so their decision at 14:00 is already after the close.
    assert trading_date_at(zo, datetime(2026, 3, 2, 19, 19, tzinfo=UTC)) == date(2026, 3, 2)
    assert trading_date_at(zo, datetime(2026, 3, 2, 19, 20, tzinfo=UTC)) == date(2026, 3, 3)
    with pytest.raises(ValueError, match="session_close"):
        MarketConfig(symbol="CL", exchange="NYMEX", session_close="16:00")  # type: ignore[arg-type]


def test_catalogue_and_calendar_agree_with_the_embedded_exchange() -> None:
    sim_calendar = pytest.importorskip("hydra_engine.sim.calendar")
    sim_catalog = pytest.importorskip("hydra_engine.sim.catalog")
    for year in range(1986, 2045):
        assert us_exchange_holidays(year) == sim_calendar.us_holidays(year), year
    for symbol, m in CATALOG.items():
        spec = sim_catalog.DEFAULT_PRODUCTS[symbol].spec
        assert (spec.exchange, spec.currency) == (m.exchange, m.currency), symbol
        assert spec.hours.close == m.session_close, symbol
        sim_zone = ZoneInfo(spec.hours.time_zone)
        for probe in (datetime(2026, 1, 15, 12, tzinfo=UTC), datetime(2026, 7, 15, 12, tzinfo=UTC)):
            assert probe.astimezone(sim_zone).utcoffset() == probe.astimezone(m.zone).utcoffset(), symbol
