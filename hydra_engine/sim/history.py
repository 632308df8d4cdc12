"""Daily price history: the bundled WTI closes, user CSV files, and laying a history onto the
simulated calendar.

A history keeps its own dates. ``lay_onto`` maps it onto the simulator's trading days: when the
history covers the range, day by day on the real dates; otherwise shifted by whole years (so the
bundled WTI series, which ends 2019-01-03, also covers 2026) and, if still too short, repeated.
The series is rebuilt from the mapped days' returns, so a shift or a repeat never adds a jump.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

WTI_RESOURCE = "wti_daily_fred.csv.gz"
_MISSING = {"", ".", "na", "n/a", "nan", "null"}
_OHLCV = ("open", "high", "low", "close", "volume")


class HistoryFormatError(ValueError):
    """A history file could not be read; names the file, 1-based line and column."""

    def __init__(self, path: str, line: int, column: str, problem: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.problem = problem
        super().__init__(f"{path}: line {line}, column {column}: {problem}")


@dataclass(frozen=True, slots=True, eq=False)
class PriceHistory:
    """Daily history on its own dates (oldest first). OHLC/volume arrays are None for close-only."""

    source: str
    dates: np.ndarray
    """``datetime64[D]``, strictly increasing."""
    close: np.ndarray
    """float64, > 0."""
    open: np.ndarray | None = None
    high: np.ndarray | None = None
    low: np.ndarray | None = None
    volume: np.ndarray | None = None
    """float64 contracts/day (NaN where the file had none)."""
    holes: int = 0
    """Rows skipped because the value was missing (FRED writes ``.`` on holidays)."""

    @property
    def first(self) -> dt.date:
        return self.dates[0].astype(dt.date)

    @property
    def last(self) -> dt.date:
        return self.dates[-1].astype(dt.date)


# ----- parsing ---------------------------------------------------------------------------------

_DATE_FORMATS = (
    (re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$"), "%Y-%m-%d"),
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"), "%m/%d/%Y"),
    (re.compile(r"^\d{8}$"), "%Y%m%d"),
)


def _parse_date(text: str, path: str, line: int, column: str) -> dt.date:
    text = text.strip()
    for pattern, fmt in _DATE_FORMATS:
        if pattern.match(text):
            try:
                return dt.datetime.strptime(text, fmt).date()
            except ValueError as exc:
                raise HistoryFormatError(path, line, column, f"invalid date {text!r} ({exc})") from None
    raise HistoryFormatError(
        path, line, column, f"cannot read date {text!r}; use YYYY-MM-DD, M/D/YYYY or YYYYMMDD"
    )


def _parse_number(text: str, path: str, line: int, column: str, *, positive: bool) -> float:
    try:
        value = float(text.strip().replace(",", ""))
    except ValueError:
        raise HistoryFormatError(path, line, column, f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise HistoryFormatError(path, line, column, f"not a finite number: {text!r}")
    if positive and value <= 0:
        raise HistoryFormatError(path, line, column, f"must be > 0, got {value:g}")
    if not positive and value < 0:
        raise HistoryFormatError(path, line, column, f"must be >= 0, got {value:g}")
    return value


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HistoryFormatError(str(path), 0, "-", f"cannot read file ({exc.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HistoryFormatError(str(path), 0, "-", f"not UTF-8 text ({exc.reason})") from None


def parse_history_csv(text: str, source: str) -> PriceHistory:
    """Parse CSV text with a header row: ``date`` plus either one value column (close only)
    or ``open, high, low, close`` and optionally ``volume`` (any order, any case).

    Rows whose values are all missing (``.``, empty, ``NA``) are holes and skipped.
    """
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise HistoryFormatError(source, 1, "-", "empty file: expected a header row")
    header = [h.strip().lower() for h in rows[0]]
    names = {h: i for i, h in enumerate(header)}
    if len(names) != len(header):
        raise HistoryFormatError(source, 1, "-", f"duplicate column names in header {rows[0]}")
    date_col = names.get("date", 0 if header[0] in ("date", "time", "day", "observation_date") else None)
    if date_col is None:
        raise HistoryFormatError(source, 1, f"1 ({rows[0][0]!r})", "first column must be the date")
    if "close" in names and all(k in names for k in ("open", "high", "low")):
        cols = {k: names[k] for k in _OHLCV if k in names}
        ohlc = True
    elif len(header) == 2 or ("close" in names and not any(k in names for k in ("open", "high", "low"))):
        value_col = names.get("close", 1 if date_col == 0 else 0)
        cols = {"close": value_col}
        if "volume" in names:
            cols["volume"] = names["volume"]
        ohlc = False
    else:
        raise HistoryFormatError(
            source, 1, "-",
            f"header {rows[0]}: need 'date' plus one value column, or open, high, low, close[, volume]",
        )

    def col_label(i: int) -> str:
        return f"{i + 1} ({rows[0][i].strip()!r})"

    dates: list[dt.date] = []
    values: dict[str, list[float]] = {k: [] for k in cols}
    holes = 0
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise HistoryFormatError(
                source, line_no, col_label(len(row)) if len(row) < len(header) else "-",
                f"expected {len(header)} columns, found {len(row)}",
            )
        day = _parse_date(row[date_col], source, line_no, col_label(date_col))
        cells = {k: row[i].strip() for k, i in cols.items()}
        missing = {k for k, v in cells.items() if v.lower() in _MISSING}
        price_missing = missing & {"open", "high", "low", "close"}
        if price_missing:
            if price_missing == {k for k in cols if k != "volume"}:
                holes += 1
                continue
            k = sorted(price_missing, key=lambda c: cols[c])[0]
            raise HistoryFormatError(source, line_no, col_label(cols[k]), "missing value")
        if dates and day <= dates[-1]:
            raise HistoryFormatError(
                source, line_no, col_label(date_col),
                f"date {day} is not after the previous row's {dates[-1]} (dates must increase)",
            )
        parsed: dict[str, float] = {}
        for k, i in cols.items():
            if k == "volume" and k in missing:
                parsed[k] = math.nan
                continue
            parsed[k] = _parse_number(cells[k], source, line_no, col_label(i), positive=k != "volume")
        if ohlc:
            o, h, lo, c = parsed["open"], parsed["high"], parsed["low"], parsed["close"]
            if h < lo:
                raise HistoryFormatError(source, line_no, col_label(cols["high"]),
                                         f"high {h:g} is below low {lo:g}")
            if h < max(o, c):
                raise HistoryFormatError(source, line_no, col_label(cols["high"]),
                                         f"high {h:g} is below open/close {max(o, c):g}")
            if lo > min(o, c):
                raise HistoryFormatError(source, line_no, col_label(cols["low"]),
                                         f"low {lo:g} is above open/close {min(o, c):g}")
        dates.append(day)
        for k in cols:
            values[k].append(parsed[k])
    if len(dates) < 2:
        raise HistoryFormatError(source, len(rows), "-", f"need at least 2 priced rows, found {len(dates)}")
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    return PriceHistory(
        source=source,
        dates=np.asarray(dates, dtype="datetime64[D]"),
        close=arr["close"],
        open=arr.get("open"),
        high=arr.get("high"),
        low=arr.get("low"),
        volume=arr.get("volume"),
        holes=holes,
    )


def load_history_csv(path: str | Path) -> PriceHistory:
    """Read a user's daily OHLCV or close-only CSV (optionally gzipped); errors name line and column."""
    p = Path(path)
    return parse_history_csv(_read_text(p), str(p))


def load_wti() -> PriceHistory:
    """The bundled FRED DCOILWTICO daily closes (1986-01-02 .. 2019-01-03), holidays skipped."""
    ref = resources.files("hydra_engine.sim").joinpath("data", WTI_RESOURCE)
    text = gzip.decompress(ref.read_bytes()).decode("utf-8")
    return parse_history_csv(text, f"hydra_engine/sim/data/{WTI_RESOURCE}")


# ----- laying a history onto the simulated calendar ---------------------------------------------

@dataclass(frozen=True, slots=True, eq=False)
class LaidHistory:
    """A history mapped onto target trading days; NaN where the source row gave no OHLC/volume."""

    close: np.ndarray
    open_ratio: np.ndarray
    """open / close of the source row, NaN where it must be synthesised."""
    high_ratio: np.ndarray
    low_ratio: np.ndarray
    volume: np.ndarray
    shift_years: int
    """Whole years subtracted from a target date to find its source date (0 = real dates)."""
    repeats: int = 0
    """How many times the source had to be repeated to cover the range."""
    source_dates: np.ndarray = field(default_factory=lambda: np.array([], dtype="datetime64[D]"))
    """Source date used for each target day."""


def _minus_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def lay_onto(history: PriceHistory, target_days: np.ndarray) -> LaidHistory:
    """Map ``history`` onto ``target_days`` (``datetime64[D]``, increasing); see the module doc.

    Real dates when the history covers the range (as-of join). Otherwise the first target day
    maps to the source day a whole number of years earlier, and from there each target trading
    day takes the next source row (so no weekday falls on a source weekend), wrapping to the
    start of the source when it runs out.
    """
    n = len(target_days)
    if n == 0:
        raise ValueError("lay_onto needs at least one target day")
    src = history.dates
    N = len(src)
    src_first, src_last = history.first, history.last
    t_first = target_days[0].astype(dt.date)
    t_last = target_days[-1].astype(dt.date)
    shift = 0
    if t_last > src_last:
        shift = t_last.year - src_last.year
        if (t_last.month, t_last.day) > (src_last.month, src_last.day):
            shift += 1
    repeats = 0
    if shift == 0 and t_first >= src_first:
        idx = np.searchsorted(src, target_days, side="right") - 1
        contiguous = np.ones(n - 1, dtype=bool)
    else:
        first = np.datetime64(_minus_years(t_first, shift))
        s = int(np.searchsorted(src, first, side="left"))
        if N >= n:
            s = min(s, N - n)
        linear = s + np.arange(n)
        repeats = int(linear[-1] // N)
        idx = linear % N
        contiguous = idx[1:] == idx[:-1] + 1
    log_p = np.log(history.close)
    cur = idx[1:]
    prev = idx[:-1]
    one_day = np.where(cur > 0, log_p[cur] - log_p[np.maximum(cur - 1, 0)], 0.0)
    step = np.empty(n, dtype=np.float64)
    step[0] = 0.0
    step[1:] = np.where(contiguous, log_p[cur] - log_p[prev], one_day)
    close = history.close[idx[0]] * np.exp(np.cumsum(step))
    fresh = np.ones(n, dtype=bool)
    fresh[1:] = (cur != prev) | ~contiguous
    nan = np.full(n, np.nan)
    if history.open is not None and history.high is not None and history.low is not None:
        c = history.close[idx]
        o_r = np.where(fresh, history.open[idx] / c, np.nan)
        h_r = np.where(fresh, history.high[idx] / c, np.nan)
        l_r = np.where(fresh, history.low[idx] / c, np.nan)
    else:
        o_r, h_r, l_r = nan, nan.copy(), nan.copy()
    vol = np.where(fresh, history.volume[idx], np.nan) if history.volume is not None else nan.copy()
    return LaidHistory(close, o_r, h_r, l_r, vol, shift, repeats, src[idx])
