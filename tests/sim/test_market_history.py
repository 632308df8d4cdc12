"""WTI loader, user CSV loader (errors name file, line and column), laying onto the calendar."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from hydra_engine.sim import calendar as cal
from hydra_engine.sim.history import HistoryFormatError, lay_onto, load_history_csv, load_wti
from hydra_engine.sim.universe import build_universe

D = dt.date


def test_wti_loader_skips_fred_holes() -> None:
    wti = load_wti()
    assert wti.first == D(1986, 1, 2)
    assert wti.last == D(2019, 1, 3)
    assert wti.holes > 250  # FRED writes "." on every holiday
    assert not np.isnan(wti.close).any()
    assert np.all(np.diff(wti.dates.astype(np.int64)) > 0)
    assert np.datetime64("2019-01-01") not in wti.dates  # a "." row
    assert wti.close[-1] == pytest.approx(46.92)
    assert wti.open is None and wti.volume is None


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_close_only_csv_accepted_with_any_value_column(tmp_path: Path) -> None:
    p = _write(tmp_path, "px.csv", "Date,Settle\n2020-01-02,10.5\n2020-01-03,.\n2020-01-06,10.75\n")
    h = load_history_csv(p)
    assert list(h.close) == [10.5, 10.75]
    assert h.holes == 1
    assert h.open is None


def test_ohlcv_csv_accepted_gzipped_and_other_date_formats(tmp_path: Path) -> None:
    text = "date,open,high,low,close,volume\n1/2/2020,10,11,9.5,10.5,120\n20200103,10.5,10.9,10.1,10.2,80\n"
    p = tmp_path / "x.csv.gz"
    p.write_bytes(gzip.compress(text.encode()))
    h = load_history_csv(p)
    assert list(h.high) == [11, 10.9]
    assert list(h.volume) == [120, 80]
    assert h.dates[1] == np.datetime64("2020-01-03")


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("Date,Close\n2020-01-02,10\n2020-13-03,11\n", 3, "1 ('Date')", "invalid date"),
        ("Date,Close\n2020-01-02,10\nyesterday,11\n", 3, "1 ('Date')", "cannot read date"),
        ("Date,Close\n2020-01-02,10\n2020-01-03,abc\n", 3, "2 ('Close')", "not a number"),
        ("Date,Close\n2020-01-02,10\n2020-01-03,-1\n", 3, "2 ('Close')", "must be > 0"),
        ("Date,Close\n2020-01-03,10\n2020-01-02,11\n", 3, "1 ('Date')", "not after"),
        ("date,open,high,low,close,volume\n2020-01-02,10,9,9.5,9.8,5\n", 2, "3 ('high')", "below low"),
        ("date,open,high,low,close,volume\n2020-01-02,10,10.2,9.5,10.4,5\n", 2, "3 ('high')",
         "below open/close"),
        ("date,open,high,low,close,volume\n2020-01-02,10,11,9,10.4,5\n2020-01-03,10,11,,10,5\n", 3,
         "4 ('low')", "missing value"),
        ("date,open,high,low,close,volume\n2020-01-02,10,11,9,10.4,-5\n", 2, "6 ('volume')", ">= 0"),
        ("date,open,high,low,close\n2020-01-02,10,11\n", 2, "4 ('low')", "expected 5 columns"),
        ("when,a,b,c\n", 1, "1 ('when')", "first column must be the date"),
    ],
)
def test_malformed_csv_errors_name_file_line_and_column(
    tmp_path: Path, text: str, line: int, column: str, problem: str
) -> None:
    p = _write(tmp_path, "bad.csv", text)
    with pytest.raises(HistoryFormatError) as err:
        load_history_csv(p)
    assert err.value.path == str(p)
    assert err.value.line == line
    assert err.value.column == column
    assert problem in str(err.value)
    assert str(p) in str(err.value) and f"line {line}" in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HistoryFormatError, match="cannot read file"):
        load_history_csv(tmp_path / "nope.csv")


def test_lay_onto_real_dates_keeps_real_closes() -> None:
    wti = load_wti()
    days = np.asarray(cal.business_days(D(2010, 1, 4), D(2012, 12, 31)), dtype="datetime64[D]")
    laid = lay_onto(wti, days)
    assert laid.shift_years == 0
    i = int(np.searchsorted(wti.dates, np.datetime64("2011-05-02")))
    j = int(np.searchsorted(days, np.datetime64("2011-05-02")))
    assert laid.close[j] == pytest.approx(wti.close[i], rel=1e-9)


def test_lay_onto_shifts_whole_years_to_cover_today() -> None:
    wti = load_wti()
    days = np.asarray(cal.business_days(D(2015, 1, 1), D(2027, 12, 31)), dtype="datetime64[D]")
    laid = lay_onto(wti, days)
    assert laid.shift_years == 9
    assert laid.repeats == 0
    assert not np.isnan(laid.close).any()
    # Day-to-day moves are the source's consecutive moves about 9 years earlier.
    assert laid.source_dates[0].astype(dt.date).year == 2006
    j = int(np.searchsorted(days, np.datetime64("2017-06-14")))
    src = laid.source_dates[j]
    assert abs((src.astype(dt.date) - D(2008, 6, 14)).days) < 30
    i = int(np.searchsorted(wti.dates, src))
    assert laid.close[j] / laid.close[j - 1] == pytest.approx(wti.close[i] / wti.close[i - 1], rel=1e-9)
    assert np.all(np.diff(laid.source_dates.astype(np.int64)) > 0)  # every day a fresh source row


def test_lay_onto_repeats_a_short_history_without_jumps(tmp_path: Path) -> None:
    days_src = cal.business_days(D(2019, 1, 1), D(2021, 12, 31))
    closes = 50 * np.exp(np.cumsum(np.full(len(days_src), 0.001)))
    p = tmp_path / "short.csv"
    p.write_text("Date,Close\n" + "".join(f"{d},{c:.4f}\n" for d, c in zip(days_src, closes)))
    hist = load_history_csv(p)
    days = np.asarray(cal.business_days(D(2015, 1, 1), D(2022, 12, 31)), dtype="datetime64[D]")
    laid = lay_onto(hist, days)
    assert laid.repeats >= 1
    ret = np.diff(np.log(laid.close))
    assert np.abs(ret).max() < 0.01  # no splice jump where the source repeats


def test_universe_from_user_csv(tmp_path: Path) -> None:
    days_src = cal.business_days(D(2014, 6, 1), D(2028, 6, 30))
    rng = np.random.default_rng(0)
    closes = 20 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days_src))))
    p = tmp_path / "ABC.csv"
    p.write_text("Date,Close\n" + "".join(f"{d},{c:.4f}\n" for d, c in zip(days_src, closes)))
    u = build_universe(seed=1, symbols=["ZO"], csv_paths={"ABC": p})
    assert "ABC" in u.symbols and u.scenario("ABC").name == "user_csv"
    fm = u.front_month("ABC", D(2019, 3, 1))
    bar = u.daily_bars(fm.con_id, D(2019, 3, 1), 1)[0]
    assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
    with pytest.raises(HistoryFormatError):
        bad = _write(tmp_path, "bad.csv", "Date,Close\n2020-01-02,x\n")
        build_universe(symbols=[], csv_paths={"BAD": bad})
