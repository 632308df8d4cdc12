"""Features are point-in-time; labels and external data join correctly; bad input fails clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_testdata import synthetic_bars

from hydra_engine.model.features import (
    FEATURE_COLUMNS,
    WARMUP_BARS,
    FeatureError,
    InsufficientHistoryError,
    build_features,
    load_external_csv,
    make_forward_returns,
    make_labels,
    tradable_returns,
)


def test_columns_rows_and_no_nan(bars: pd.DataFrame) -> None:
    f = build_features(bars)
    assert list(f.columns) == list(FEATURE_COLUMNS)
    assert len(f) == len(bars) - (WARMUP_BARS - 1)
    assert f.index[0] == bars.index[WARMUP_BARS - 1]
    assert f.index[-1] == bars.index[-1]
    assert np.isfinite(f.to_numpy()).all()


@pytest.mark.parametrize("cut", [WARMUP_BARS, 60, 200, 399])
def test_rows_only_use_data_up_to_their_close(bars: pd.DataFrame, cut: int) -> None:
    full = build_features(bars)
    truncated = build_features(bars.iloc[:cut])
    pd.testing.assert_frame_equal(truncated, full.loc[truncated.index], rtol=1e-12, atol=1e-12)


def test_changing_future_bars_leaves_past_rows_alone(bars: pd.DataFrame) -> None:
    changed = bars.copy()
    changed.iloc[300:, :4] *= 3.0
    changed.iloc[300:, 4] = 1
    a, b = build_features(bars), build_features(changed)
    before = a.index < bars.index[300]
    pd.testing.assert_frame_equal(a[before], b[before])
    assert not np.allclose(a.loc[bars.index[300]], b.loc[bars.index[300]])


def test_date_column_and_unsorted_input_accepted(bars: pd.DataFrame) -> None:
    shuffled = bars.reset_index().sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(build_features(shuffled), build_features(bars), check_freq=False)


def test_constant_prices_give_finite_features() -> None:
    dates = pd.bdate_range("2021-01-01", periods=40)
    flat = pd.DataFrame({"open": 5.0, "high": 5.0, "low": 5.0, "close": 5.0, "volume": 100}, index=dates)
    f = build_features(flat)
    assert np.isfinite(f.to_numpy()).all()
    assert (f[["ret_1", "vol_20", "volume_z", "range_z", "trend_20"]] == 0.0).all().all()


def test_negative_back_adjusted_prices_work(bars: pd.DataFrame) -> None:
    shifted = bars.copy()
    shifted[["open", "high", "low", "close"]] -= 150.0
    assert np.isfinite(build_features(shifted).to_numpy()).all()


def test_too_little_history_is_a_clear_error(bars: pd.DataFrame) -> None:
    with pytest.raises(InsufficientHistoryError, match=f"need at least {WARMUP_BARS} completed daily bars.*got 5"):
        build_features(bars.iloc[:5])


def test_nan_bar_names_date_and_column(bars: pd.DataFrame) -> None:
    broken = bars.copy()
    broken.iloc[50, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(FeatureError, match=rf"close is NaN/inf on {bars.index[50].date()} \(row 50\)"):
        build_features(broken)


def test_missing_column_and_bad_bars_are_named(bars: pd.DataFrame) -> None:
    with pytest.raises(FeatureError, match=r"missing column\(s\) \['volume'\]"):
        build_features(bars.drop(columns="volume"))
    dup = pd.concat([bars.iloc[:30], bars.iloc[[29]]])
    with pytest.raises(FeatureError, match="duplicate trade date"):
        build_features(dup)
    bad = bars.copy()
    bad.iloc[40, bad.columns.get_loc("high")] = bad.iloc[40]["low"] - 1
    with pytest.raises(FeatureError, match=f"high < low on {bars.index[40].date()}"):
        build_features(bad)


def _hand_bars() -> pd.DataFrame:
    """Six bars whose tradable (next open -> following open) moves oppose the close-to-close ones."""
    opens = [10.0, 10.0, 12.0, 9.0, 11.0, 8.0]
    closes = [11.0, 10.0, 12.0, 10.0, 11.0, 9.0]
    return pd.DataFrame(
        {
            "open": opens,
            "high": [max(o, c) + 0.5 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) - 0.5 for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [100.0] * 6,
        },
        index=pd.bdate_range("2024-01-01", periods=6, name="date"),
    )


def test_label_is_sign_of_tradable_return_not_close_to_close() -> None:
    b = _hand_bars()
    o, c = b["open"].to_numpy(), b["close"].to_numpy()
    r = tradable_returns(b)
    # decided after D's close, filled at D+1's open, held to D+2's open; the last two bars wait
    assert list(r.index) == list(b.index[:4])
    np.testing.assert_allclose(r.to_numpy(), [o[d + 2] / o[d + 1] - 1 for d in range(4)])
    y = make_labels(b)
    assert list(y.index) == list(b.index[:4])
    assert y.tolist() == [1, 0, 1, 0]
    assert y.tolist() != [int(c[d + 1] > c[d]) for d in range(4)]  # the frame really separates them
    assert make_forward_returns(b).equals(r)  # the older name scores the same stream


def test_labels_use_no_bar_beyond_the_tradable_exit(bars: pd.DataFrame) -> None:
    y, r = make_labels(bars), tradable_returns(bars)
    assert len(y) == len(r) == len(bars) - 2 and y.index[-1] == bars.index[-3]
    o = bars["open"]
    np.testing.assert_allclose(r.to_numpy(), (o.shift(-2) / o.shift(-1) - 1).iloc[:-2].to_numpy())
    assert (y.to_numpy() == (r.to_numpy() > 0)).all()
    cut = 200  # truncating the history never changes an existing label
    pd.testing.assert_series_equal(make_labels(bars.iloc[:cut]), y.iloc[: cut - 2])
    moved = bars.copy()
    moved.iloc[cut:, moved.columns.get_loc("close")] *= 1.5  # closes are not what the engine trades
    pd.testing.assert_series_equal(make_labels(moved), y)
    y5 = make_labels(bars, horizon=5)
    assert len(y5) == len(bars) - 6
    assert y5.iloc[0] == int(o.iloc[6] > o.iloc[1])
    with pytest.raises(FeatureError, match="horizon must be an integer >= 1"):
        make_labels(bars, horizon=0)
    zero = bars.copy()
    zero.iloc[10, zero.columns.get_loc("open")] = 0.0
    with pytest.raises(FeatureError, match=f"open is 0 on {bars.index[10].date()}"):
        tradable_returns(zero)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_external_joined_as_of_release_not_observation(tmp_path: Path, bars: pd.DataFrame) -> None:
    obs = bars.index[30:200:5]
    lines = ["date,net_long"] + [f"{d.date()},{i}" for i, d in enumerate(obs)]
    ext = load_external_csv(_write(tmp_path / "cot.csv", "\n".join(lines)), release_lag_days=3)
    assert list(ext.columns) == ["ext_net_long"]
    f = build_features(bars, ext)
    available = obs + pd.Timedelta(days=3)
    assert f.index[0] == bars.index[bars.index >= available[0]][0]
    for day, value in f["ext_net_long"].items():
        expected = int(np.flatnonzero(available <= day)[-1])
        assert value == expected, day
    # a value is never visible on its observation date (lag 3 > 0)
    first_obs_row = f.index.get_indexer([obs[1]])[0]
    assert f["ext_net_long"].iloc[first_obs_row] == 0


def test_external_release_date_column_overrides_lag(tmp_path: Path, bars: pd.DataFrame) -> None:
    d0, d1 = bars.index[40].date(), bars.index[45].date()
    ext = load_external_csv(_write(tmp_path / "x.csv", f"date,release_date,v\n{d0},{d1},7.5\n"), release_lag_days=0)
    f = build_features(bars, ext)
    assert f.index[0] == bars.index[45]
    assert f["ext_v"].iloc[0] == 7.5


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("when,v\n2020-01-01,1\n", "needs a 'date' column"),
        ("date,v\n2020-01-01,1\n2020-13-01,2\n", r"x.csv:3: column 'date' value '2020-13-01' is not a YYYY-MM-DD date"),
        ("date,v\n2020-01-01,1\n2020-01-02,abc\n", r"x.csv:3: column 'v' value 'abc' is not a finite number"),
        ("date,v\n2020-01-01,\n", r"x.csv:2: column 'v' value '' is not a finite number"),
        ("date,v\n2020-01-01,1\n2020-01-01,2\n", r"x.csv:3: duplicate date 2020-01-01"),
        ("date\n2020-01-01\n", "no value columns"),
        ("date,v\n", "no data rows"),
    ],
)
def test_external_csv_errors_name_line_and_column(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(FeatureError, match=match):
        load_external_csv(_write(tmp_path / "x.csv", text), release_lag_days=1)


def test_external_csv_missing_file_and_bad_lag(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match="not found"):
        load_external_csv(tmp_path / "nope.csv", 1)
    p = _write(tmp_path / "x.csv", "date,v\n2020-01-01,1\n")
    with pytest.raises(FeatureError, match=r"release_lag_days must be an integer in \[0, 366\]"):
        load_external_csv(p, -1)


def test_external_released_after_last_bar_is_clear(tmp_path: Path) -> None:
    bars = synthetic_bars(60)
    p = _write(tmp_path / "late.csv", "date,v\n2030-01-01,1\n")
    with pytest.raises(InsufficientHistoryError, match="after the last bar"):
        build_features(bars, load_external_csv(p, 0))


def test_external_same_release_day_keeps_latest_observation(tmp_path: Path) -> None:
    p = _write(tmp_path / "x.csv", "date,release_date,v\n2020-01-02,2020-01-10,1\n2020-01-09,2020-01-10,2\n2020-01-03,2020-01-06,3\n")
    ext = load_external_csv(p, 0)
    assert list(ext.index.strftime("%Y-%m-%d")) == ["2020-01-06", "2020-01-10"]
    assert list(ext["ext_v"]) == [3.0, 2.0]
