"""Completed daily bars per market and contract, kept so features never depend on one download.

``contract`` is ``"CONTFUT"`` for the broker's continuous (back-adjusted) history or a contract
month (``"202612"``) / local symbol for one listed month. Only completed sessions belong here:
the caller never stores a partial bar. Upserting the same date again replaces it (the broker may
revise a settlement).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Iterable

import aiosqlite

from hydra_engine.clock import Clock, to_iso
from hydra_engine.store.lock import WriteGate

if TYPE_CHECKING:  # pandas is imported on first use: CLI subcommands that never load bars stay quick
    import pandas as pd

CONTINUOUS = "CONTFUT"
BAR_COLUMNS = ("open", "high", "low", "close", "volume", "wap", "bar_count")


@dataclass(frozen=True, slots=True)
class BarRow:
    """One completed session; prices in quote units, volume in contracts."""

    date: date
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    wap: float | None = None
    bar_count: int | None = None


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return value.to_pydatetime().date()
    if isinstance(value, str):
        text = value.strip()
        return date.fromisoformat(text if "-" in text else f"{text[:4]}-{text[4:6]}-{text[6:8]}")
    raise TypeError(f"bar date {value!r}: expected a date")


def _row_from(obj: Any) -> BarRow:
    """A BarRow from a BarRow, a sim ``DailyBar``, an ib_async ``BarData`` or a mapping."""
    if isinstance(obj, BarRow):
        return obj
    get = obj.get if isinstance(obj, dict) else (lambda k, d=None: getattr(obj, k, d))
    wap = get("wap", None)
    if wap is None:
        wap = get("average", None)
    count = get("bar_count", None)
    if count is None:
        count = get("barCount", None)
    return BarRow(
        date=_as_date(get("date")), open=float(get("open")), high=float(get("high")), low=float(get("low")),
        close=float(get("close")), volume=float(get("volume", 0.0) or 0.0),
        wap=float(wap) if wap is not None and wap == wap else None,
        bar_count=int(count) if count is not None and count == count else None,
    )


def _validate(market: str, contract: str, bar: BarRow) -> None:
    where = f"bar {market}/{contract} {bar.date.isoformat()}"
    for name in ("open", "high", "low", "close", "volume"):
        v = getattr(bar, name)
        if not math.isfinite(v):
            raise ValueError(f"{where}: {name} = {v} is not a finite number")
    if bar.high < bar.low:
        raise ValueError(f"{where}: high {bar.high} is below low {bar.low}")
    if bar.volume < 0:
        raise ValueError(f"{where}: volume {bar.volume} is negative")


def frame_to_rows(frame: "pd.DataFrame") -> list[BarRow]:
    """Rows from a DataFrame indexed by date (or with a ``date`` column) and the bar columns."""
    df = frame.reset_index() if "date" not in frame.columns else frame
    if "date" not in df.columns:
        df = df.rename(columns={df.columns[0]: "date"})
    return [_row_from(rec) for rec in df.to_dict("records")]


def _frame(rows: list[Any]) -> "pd.DataFrame":
    import numpy as np
    import pandas as pd

    dates = np.array([r[0] for r in rows], dtype="datetime64[D]").astype("datetime64[us]")
    values = np.array([r[1:] for r in rows], dtype="float64").reshape(len(rows), len(BAR_COLUMNS))
    return pd.DataFrame(values, index=pd.DatetimeIndex(dates, name="date"), columns=list(BAR_COLUMNS))


class BarRepo:
    """Repository over ``bars``."""

    def __init__(self, conn: aiosqlite.Connection, gate: WriteGate, clock: Clock) -> None:
        self._conn = conn
        self._gate = gate
        self._clock = clock

    async def upsert(self, market: str, contract: str, bars: "Iterable[Any] | pd.DataFrame") -> int:
        """Insert or replace bars; returns how many were written. All or nothing."""
        is_frame = hasattr(bars, "to_dict") and hasattr(bars, "columns")
        rows = frame_to_rows(bars) if is_frame else [_row_from(b) for b in bars]  # type: ignore[arg-type]
        for b in rows:
            _validate(market, contract, b)
        if not rows:
            return 0
        now = to_iso(self._clock.now())
        params = [
            (market, contract, b.date.isoformat(), b.open, b.high, b.low, b.close, b.volume, b.wap, b.bar_count, now)
            for b in rows
        ]
        async with self._gate.transaction() as conn:
            await conn.executemany(
                "INSERT INTO bars (market, contract, date, open, high, low, close, volume, wap, bar_count, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (market, contract, date) "
                "DO UPDATE SET open = excluded.open, high = excluded.high, low = excluded.low, "
                "close = excluded.close, volume = excluded.volume, wap = excluded.wap, "
                "bar_count = excluded.bar_count, updated_at = excluded.updated_at",
                params,
            )
        return len(rows)

    async def replace(self, market: str, contract: str, bars: "Iterable[Any] | pd.DataFrame") -> int:
        """Make ``bars`` the whole stored series of (market, contract), in one transaction: a
        back-adjusted continuous history re-adjusted at a roll replaces its old levels."""
        is_frame = hasattr(bars, "to_dict") and hasattr(bars, "columns")
        rows = frame_to_rows(bars) if is_frame else [_row_from(b) for b in bars]  # type: ignore[arg-type]
        for b in rows:
            _validate(market, contract, b)
        now = to_iso(self._clock.now())
        params = [
            (market, contract, b.date.isoformat(), b.open, b.high, b.low, b.close, b.volume, b.wap, b.bar_count, now)
            for b in rows
        ]
        async with self._gate.transaction() as conn:
            await conn.execute("DELETE FROM bars WHERE market = ? AND contract = ?", (market, contract))
            await conn.executemany(
                "INSERT INTO bars (market, contract, date, open, high, low, close, volume, wap, bar_count, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", params)
        return len(rows)

    async def latest_date(self, market: str, contract: str = CONTINUOUS) -> date | None:
        """The newest stored bar's date (to ask the broker only for what is missing)."""
        async with self._conn.execute(
            "SELECT MAX(date) FROM bars WHERE market = ? AND contract = ?", (market, contract)
        ) as cur:
            row = await cur.fetchone()
        return date.fromisoformat(row[0]) if row and row[0] else None

    async def count(self, market: str, contract: str = CONTINUOUS) -> int:
        async with self._conn.execute(
            "SELECT COUNT(*) FROM bars WHERE market = ? AND contract = ?", (market, contract)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def contracts(self, market: str) -> list[str]:
        async with self._conn.execute(
            "SELECT DISTINCT contract FROM bars WHERE market = ? ORDER BY contract", (market,)
        ) as cur:
            return [r[0] for r in await cur.fetchall()]

    async def load(
        self,
        market: str,
        contract: str = CONTINUOUS,
        *,
        start: date | None = None,
        end: date | None = None,
        limit: int | None = None,
    ) -> "pd.DataFrame":
        """Bars as a DataFrame indexed by trade date (``DatetimeIndex`` named ``date``), oldest first.

        ``limit`` keeps the most recent ``limit`` bars. Columns: open, high, low, close, volume,
        wap, bar_count (floats; missing wap/bar_count are NaN).
        """
        sql = "SELECT date, open, high, low, close, volume, wap, bar_count FROM bars WHERE market = ? AND contract = ?"
        args: list[Any] = [market, contract]
        if start is not None:
            sql += " AND date >= ?"
            args.append(start.isoformat())
        if end is not None:
            sql += " AND date <= ?"
            args.append(end.isoformat())
        sql += " ORDER BY date DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        async with self._conn.execute(sql, args) as cur:
            rows = list(await cur.fetchall())
        rows.reverse()
        return await asyncio.to_thread(_frame, rows)  # keep the loop free for long histories
