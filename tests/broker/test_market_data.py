"""Pure parts of the gateway's data requests: completed-bar rule, durations, account parsing."""

from __future__ import annotations

import datetime as dt

import pytest
from ib_async import AccountValue, ContractDetails

from hydra_engine.broker.account import parse_account_summary
from hydra_engine.broker.errors import StateUnknown, classify
from hydra_engine.broker.market_data import BarFetcher, _duration

UTC = dt.UTC


def test_a_bar_is_complete_only_after_its_session_closes() -> None:
    details = ContractDetails(
        timeZoneId="US/Central",
        tradingHours="20180108:1700-20180109:1600;20180109:1700-20180110:1600",
    )
    day = dt.date(2018, 1, 9)
    before_close = dt.datetime(2018, 1, 9, 21, 59, tzinfo=UTC)  # 15:59 CT
    after_close = dt.datetime(2018, 1, 9, 22, 0, tzinfo=UTC)  # 16:00 CT
    assert not BarFetcher._completed(day, before_close, details)
    assert BarFetcher._completed(day, after_close, details)
    # without trading hours: only dates before today count as complete
    assert BarFetcher._completed(dt.date(2018, 1, 8), after_close, None)
    assert not BarFetcher._completed(day, after_close, None)


def test_duration_strings() -> None:
    assert _duration(0) == "1 D"
    assert _duration(30) == "30 D"
    assert _duration(365) == "365 D"
    assert _duration(366) == "2 Y"


def test_account_summary_parsing() -> None:
    rows = [
        AccountValue("DU1", "NetLiquidation", "1000.5", "USD", ""),
        AccountValue("DU1", "TotalCashValue", "900", "USD", ""),
        AccountValue("DU1", "AccountType", "INDIVIDUAL", "", ""),  # not numeric: skipped
    ]
    snap = parse_account_summary(rows, "DU1", dt.datetime(2018, 1, 9, tzinfo=UTC))
    assert snap.net_liquidation == 1000.5 and snap.total_cash == 900 and snap.currency == "USD"
    with pytest.raises(StateUnknown, match="NetLiquidation"):
        parse_account_summary(rows[1:], "DU1", dt.datetime(2018, 1, 9, tzinfo=UTC))


@pytest.mark.parametrize(
    "code, kind",
    [(1100, "connectivity"), (1101, "connectivity"), (2104, "farm"), (2105, "farm"), (162, "pacing"),
     (326, "client_id"), (201, "order"), (202, "order"), (10148, "order"), (200, "other")],
)
def test_error_codes_are_classified(code: int, kind: str) -> None:
    assert classify(code) == kind
