"""A DataTable whose render caches are sized for a pane, not for a spreadsheet.

Textual's DataTable keeps up to 10,000 rendered cells and 1,000 rendered rows and lines, keyed by
its update count, so a table refreshed every second fills them with renders nobody sees again:
several megabytes per table, held for as long as the app runs. Only the rows on screen are rendered
(a few dozen, even in a full-height screen); caches a few times that size keep scrolling as fast and
the app's memory flat over weeks.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

ROWS_CACHED = 256
"""Rendered rows and lines kept per table: several screens' worth of rows."""
CELLS_PER_ROW = 16
"""Rendered cells kept per cached row: the widest table (the model screen's) has 13 columns."""


class PaneTable(DataTable[Any]):
    """A DataTable with pane-sized render caches (textual is pinned: the caches are its private
    attributes, and ``tests/tui/test_pane_table.py`` fails if a new Textual renames them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._row_render_cache.maxsize = ROWS_CACHED
        self._row_renderable_cache.maxsize = ROWS_CACHED
        self._line_cache.maxsize = ROWS_CACHED
        self._cell_render_cache.maxsize = ROWS_CACHED * CELLS_PER_ROW
