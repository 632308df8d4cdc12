"""A few levels of book around the touch, for ``reqMktDepth``.

Level 0 is the touch ``quote`` shows (same prices and sizes); deeper levels step one tick away per
level with sizes that grow with depth and vary from minute to minute, drawn from a hash of
(conId, minute, side, level) so the book is the same for every client and every run.
"""

from __future__ import annotations

import datetime as dt
import zlib

from .market_types import Quote
from .term_structure import tick_round

MAX_DEPTH_ROWS = 10
"""Rows per side the exchange shows (a client asking for more gets this many)."""

Level = tuple[float, int]
"""(price, size) of one row."""


def book(q: Quote, con_id: int, tick: float, rows: int, at: dt.datetime) -> tuple[list[Level], list[Level]]:
    """(asks, bids), best first, ``rows`` levels each (1..MAX_DEPTH_ROWS)."""
    rows = max(1, min(rows, MAX_DEPTH_ROWS))
    minute = int(at.timestamp()) // 60
    asks: list[Level] = []
    bids: list[Level] = []
    for k in range(rows):
        asks.append((tick_round(q.ask + k * tick, tick), _size(q.ask_size, con_id, minute, 0, k)))
        bid = tick_round(q.bid - k * tick, tick)
        if bid > 0:
            bids.append((bid, _size(q.bid_size, con_id, minute, 1, k)))
    return asks, bids


def _size(touch: int, con_id: int, minute: int, side: int, level: int) -> int:
    if level == 0:
        return max(1, int(touch))
    h = zlib.crc32(f"{con_id}:{minute}:{side}:{level}".encode()) / 0xFFFFFFFF
    return max(1, int(round(max(1, touch) * (1.0 + 0.6 * level) * (0.6 + 0.8 * h))))
