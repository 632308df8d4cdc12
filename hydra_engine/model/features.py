"""Point-in-time features and labels from completed daily bars.

Every feature row for trade date ``t`` is computed from bars dated ``t`` or earlier only (trailing
windows), so the row is exactly what was knowable at that session's close: computing features on
a history truncated at ``t`` gives the same row as on the full history. External daily series (for
example CFTC positioning) join as of the date they became public, never their observation date.

Returns are price changes relative to the absolute previous close, so additively back-adjusted
continuous histories with negative prices still work; a zero close is rejected. The target side
(labels and the return a decision earns) is ``tradable_returns``: next session's open to the one
after, the return the engine can actually capture.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import structlog

log = structlog.get_logger(__name__)

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Columns ``build_features`` needs; the index (or a ``date`` column) is the trade date."""

RETURN_HORIZONS: tuple[int, ...] = (1, 5, 10, 20)
"""Trading-day horizons of the trailing return features."""

Z_WINDOW = 20
"""Trailing window (trading days) of the volatility, volume and range statistics."""

FEATURE_COLUMNS: tuple[str, ...] = (
    "ret_1",
    "ret_5",
    "ret_10",
    "ret_20",
    "vol_10",
    "vol_20",
    "vol_ratio",
    "volume_z",
    "range_z",
    "trend_20",
    "ma_cross",
    "dow_sin",
    "dow_cos",
    "month_sin",
    "month_cos",
)
"""Columns produced from bars alone, in order. External columns are prefixed ``ext_``."""

WARMUP_BARS = max(RETURN_HORIZONS[-1], Z_WINDOW) + 1
"""Completed bars needed before the first feature row exists."""

EXTERNAL_PREFIX = "ext_"


class FeatureError(ValueError):
    """Bars, labels or an external file are unusable; the message names the row and column."""


class InsufficientHistoryError(FeatureError):
    """Too few completed bars (or labelled rows) to compute what was asked."""


def _as_dated(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Return a copy indexed by normalised trade date (from the index or a ``date`` column)."""
    if not isinstance(frame, pd.DataFrame):
        raise FeatureError(f"{what}: expected a pandas DataFrame, got {type(frame).__name__}")
    df = frame.copy()
    if "date" in df.columns:
        df = df.set_index("date")
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(df.index))
    except (TypeError, ValueError) as exc:
        raise FeatureError(f"{what}: index (or 'date' column) is not dates: {exc}") from exc
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    df.index = idx.normalize()
    df.index.name = "date"
    if df.index.has_duplicates:
        dup = df.index[df.index.duplicated()][0]
        raise FeatureError(f"{what}: duplicate trade date {dup.date()}")
    if not df.index.is_monotonic_increasing:
        df = df.sort_index()
    return df


def validate_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Check and normalise completed daily bars; raise ``FeatureError`` naming the bad cell."""
    df = _as_dated(bars, "bars")
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise FeatureError(f"bars: missing column(s) {missing}; need {list(BAR_COLUMNS)}")
    df = df[list(BAR_COLUMNS)].astype(float)
    values = df.to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise FeatureError(
            f"bars: {BAR_COLUMNS[col]} is NaN/inf on {df.index[row].date()} (row {row}); "
            "pass completed bars only"
        )
    zero = df["close"] == 0.0
    if zero.any():
        raise FeatureError(f"bars: close is 0 on {df.index[zero.argmax()].date()}; returns undefined")
    if (df["high"] < df["low"]).any():
        day = df.index[(df["high"] < df["low"]).argmax()]
        raise FeatureError(f"bars: high < low on {day.date()}")
    if (df["volume"] < 0).any():
        day = df.index[(df["volume"] < 0).argmax()]
        raise FeatureError(f"bars: negative volume on {day.date()}")
    return df


def _rel_change(close: pd.Series, periods: int) -> pd.Series:
    prev = close.shift(periods)
    return (close - prev) / prev.abs()


def _safe_z(x: pd.Series, window: int) -> pd.Series:
    """Trailing z-score of the latest value; 0 where the window does not vary."""
    mean = x.rolling(window, min_periods=window).mean()
    sd = x.rolling(window, min_periods=window).std(ddof=1)
    z = (x - mean) / sd
    return z.where(sd > 1e-12, 0.0).where(mean.notna())


def build_features(bars: pd.DataFrame, external: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature rows indexed by trade date, each using only data known at that date's close.

    ``bars``: completed daily bars (``open high low close volume``), one row per trade date, index
    or ``date`` column = trade date. ``external``: output of ``load_external_csv`` (indexed by the
    date each value became available); joined backward as of each trade date, and rows before the
    first available external value are dropped. The first ``WARMUP_BARS - 1`` trade dates have no
    row. Raises ``InsufficientHistoryError`` if no row can be produced.
    """
    df = validate_bars(bars)
    if len(df) < WARMUP_BARS:
        raise InsufficientHistoryError(
            f"bars: need at least {WARMUP_BARS} completed daily bars for one feature row, got {len(df)}"
        )
    close = df["close"]
    ret1 = _rel_change(close, 1)
    out = pd.DataFrame(index=df.index)
    for h in RETURN_HORIZONS:
        out[f"ret_{h}"] = _rel_change(close, h)
    out["vol_10"] = ret1.rolling(10, min_periods=10).std(ddof=1)
    out["vol_20"] = ret1.rolling(Z_WINDOW, min_periods=Z_WINDOW).std(ddof=1)
    ratio = out["vol_10"] / out["vol_20"]
    out["vol_ratio"] = ratio.where(out["vol_20"] > 1e-12, 1.0).where(out["vol_20"].notna())
    out["volume_z"] = _safe_z(np.log1p(df["volume"]), Z_WINDOW)
    out["range_z"] = _safe_z((df["high"] - df["low"]) / close.abs(), Z_WINDOW)
    sma20 = close.rolling(Z_WINDOW, min_periods=Z_WINDOW).mean()
    sma5 = close.rolling(5, min_periods=5).mean()
    out["trend_20"] = (close - sma20) / sma20.abs()
    out["ma_cross"] = (sma5 - sma20) / sma20.abs()
    out.loc[sma20 == 0.0, ["trend_20", "ma_cross"]] = 0.0
    dow = df.index.day_of_week.to_numpy()
    month = df.index.month.to_numpy() - 1
    out["dow_sin"] = np.sin(2 * math.pi * dow / 5.0)
    out["dow_cos"] = np.cos(2 * math.pi * dow / 5.0)
    out["month_sin"] = np.sin(2 * math.pi * month / 12.0)
    out["month_cos"] = np.cos(2 * math.pi * month / 12.0)
    out = out.iloc[WARMUP_BARS - 1 :]
    out = out[list(FEATURE_COLUMNS)]
    if out.isna().any().any():  # pragma: no cover - guards the arithmetic above
        col = out.columns[out.isna().any()][0]
        raise FeatureError(f"features: {col} is NaN on {out.index[out[col].isna()][0].date()}")

    if external is not None:
        out = _join_external(out, external)
    return out


def _join_external(features: pd.DataFrame, external: pd.DataFrame) -> pd.DataFrame:
    ext = _as_dated(external, "external")
    if ext.empty:
        raise FeatureError("external: no rows")
    non_numeric = [c for c in ext.columns if not pd.api.types.is_numeric_dtype(ext[c])]
    if non_numeric:
        raise FeatureError(f"external: non-numeric column(s) {non_numeric}")
    ext = ext.rename(columns=lambda c: c if str(c).startswith(EXTERNAL_PREFIX) else f"{EXTERNAL_PREFIX}{c}")
    clash = [c for c in ext.columns if c in features.columns]
    if clash:
        raise FeatureError(f"external: column(s) {clash} clash with bar features")
    if ext.isna().any().any():
        col = ext.columns[ext.isna().any()][0]
        raise FeatureError(f"external: {col} is NaN on {ext.index[ext[col].isna()][0].date()}")
    joined = pd.merge_asof(
        features.reset_index(),
        ext.reset_index().rename(columns={"date": "available_date"}),
        left_on="date",
        right_on="available_date",
        direction="backward",
    ).set_index("date")
    joined = joined.drop(columns=["available_date"])
    known = joined[list(ext.columns)].notna().all(axis=1)
    dropped = int((~known).sum())
    if dropped:
        log.info("features.external_warmup_dropped", rows=dropped, first_available=str(ext.index[0].date()))
    joined = joined[known]
    if joined.empty:
        raise InsufficientHistoryError(
            f"external: first value available {ext.index[0].date()}, after the last bar "
            f"{features.index[-1].date()}; no feature row has it"
        )
    return joined


EXECUTION_LAG = 1
"""Sessions between a decision and its entry: decided after bar D's close, filled at D+1's open."""


def tradable_returns(bars: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """The return a position decided after bar D's close captures: open[D+1] -> open[D+1+horizon].

    The engine decides after D's close and its order fills in the next session, so this (not
    close-to-close) is what labels, walk-forward P&L, the performance monitor and the promotion
    gate score. Relative to ``|open[D+1]|`` (back-adjusted prices may be negative), indexed by
    decision date D; the last ``horizon + EXECUTION_LAG`` dates have no realised return yet and
    are omitted, so nothing is labelled with data the engine cannot have.
    """
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise FeatureError(f"tradable_returns: horizon must be an integer >= 1, got {horizon!r}")
    opens = validate_bars(bars)["open"]
    entry = opens.shift(-EXECUTION_LAG)
    exit_ = opens.shift(-(EXECUTION_LAG + horizon))
    known = entry.notna() & exit_.notna()
    zero = known & (entry == 0.0)
    if zero.any():
        day = opens.index[int(np.flatnonzero(zero.to_numpy())[0]) + EXECUTION_LAG]
        raise FeatureError(f"bars: open is 0 on {day.date()}; the tradable return is undefined")
    fwd = ((exit_ - entry) / entry.abs())[known]
    fwd.name = f"fwd_ret_{horizon}d"
    return fwd


def make_labels(bars: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """1 where the tradable return (``tradable_returns``) of decision date D is positive, else 0.

    Uses future bars by design (it is the target). The last ``horizon + EXECUTION_LAG`` dates have
    no label yet and are omitted; align with features by index.
    """
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise FeatureError(f"make_labels: horizon must be an integer >= 1, got {horizon!r}")
    labels = (tradable_returns(bars, horizon) > 0.0).astype(int)
    labels.name = f"up_{horizon}d"
    return labels


def make_forward_returns(bars: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """Older name of ``tradable_returns`` (kept so existing callers score the same stream)."""
    return tradable_returns(bars, horizon)


def load_external_csv(path: str | Path, release_lag_days: int) -> pd.DataFrame:
    """Read an external daily series and index it by the date each value became public.

    The CSV needs a ``date`` column (YYYY-MM-DD, the observation date) and one or more numeric
    columns. A value observed on date D is usable from trade date ``D + release_lag_days``
    (calendar days), so choose the lag such that the value is public before that date's decision
    time (CFTC positioning as of Tuesday is released Friday afternoon: lag 6 is safe). An optional
    ``release_date`` column overrides the lag row by row. Columns are prefixed ``ext_``.
    """
    p = Path(path)
    if not isinstance(release_lag_days, int) or isinstance(release_lag_days, bool) or not 0 <= release_lag_days <= 366:
        raise FeatureError(f"{p}: release_lag_days must be an integer in [0, 366], got {release_lag_days!r}")
    if not p.is_file():
        raise FeatureError(f"{p}: external feature file not found")
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FeatureError(f"{p}: cannot parse CSV: {exc}") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    if "date" not in raw.columns:
        raise FeatureError(f"{p}: needs a 'date' column, found {list(raw.columns)}")
    value_cols = [c for c in raw.columns if c not in ("date", "release_date")]
    if not value_cols:
        raise FeatureError(f"{p}: no value columns besides 'date'")
    if raw.empty:
        raise FeatureError(f"{p}: no data rows")

    def parse_dates(col: str) -> pd.DatetimeIndex:
        parsed = pd.to_datetime(raw[col].str.strip(), format="%Y-%m-%d", errors="coerce")
        if parsed.isna().any():
            i = int(np.flatnonzero(parsed.isna())[0])
            raise FeatureError(f"{p}:{i + 2}: column '{col}' value {raw[col].iloc[i]!r} is not a YYYY-MM-DD date")
        return pd.DatetimeIndex(parsed)

    observed = parse_dates("date")
    if observed.has_duplicates:
        i = int(np.flatnonzero(observed.duplicated())[0])
        raise FeatureError(f"{p}:{i + 2}: duplicate date {observed[i].date()}")
    if "release_date" in raw.columns:
        available = parse_dates("release_date")
        early = available < observed
        if early.any():
            i = int(np.flatnonzero(early)[0])
            raise FeatureError(f"{p}:{i + 2}: release_date {available[i].date()} is before date {observed[i].date()}")
    else:
        available = observed + pd.Timedelta(days=release_lag_days)
    data: dict[str, np.ndarray] = {}
    for col in value_cols:
        values = pd.to_numeric(raw[col].str.strip(), errors="coerce")
        bad = values.isna() | ~np.isfinite(values.astype(float))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FeatureError(f"{p}:{i + 2}: column '{col}' value {raw[col].iloc[i]!r} is not a finite number")
        name = col if col.startswith(EXTERNAL_PREFIX) else f"{EXTERNAL_PREFIX}{col}"
        data[name] = values.astype(float).to_numpy()
    out = pd.DataFrame(data, index=pd.DatetimeIndex(available, name="date"))
    out["_observed"] = observed
    # Two observations public on the same day (a late release): the later observation is the one known.
    out = out.sort_values(["date", "_observed"], kind="stable")
    out = out[~out.index.duplicated(keep="last")].drop(columns="_observed")
    return out
