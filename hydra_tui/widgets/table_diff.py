"""Apply a keyed diff to a DataTable: add new rows, update changed cells, remove gone rows.

Rebuilding a table on every tick costs CPU and flickers; a diff inside ``batch_update`` costs only
what changed (STYLE.md, memray's TUI). The same for a Static's text: ``update_if_changed``. Only when a new row must go before rows already shown (the
fills pane, newest first) is the table rebuilt, once per new fill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from textual.widgets import DataTable, Static


def apply_rows(table: DataTable[Any], rows: Mapping[str, Sequence[Any]]) -> None:
    """Make ``table`` hold exactly ``rows`` (row key -> cells in column order), in that order."""
    columns = list(table.columns.keys())
    wanted = list(rows)
    shown = [k.value for k in table.rows.keys()]
    kept = [k for k in shown if k in rows]
    appended = kept + [k for k in wanted if k not in set(kept)]
    with table.app.batch_update():
        if appended != wanted:
            table.clear()
        for key in [k.value for k in list(table.rows.keys()) if k.value is not None]:
            if key not in rows:
                table.remove_row(key)
        for key, cells in rows.items():
            if key in table.rows:
                current = table.get_row(key)
                for col, old, new in zip(columns, current, cells, strict=False):
                    if str(old) != str(new) or getattr(old, "style", None) != getattr(new, "style", None):
                        table.update_cell(key, col, new, update_width=True)
            else:
                table.add_row(*cells, key=key)


def update_if_changed(widget: Static, content: Any, *, layout: bool = True) -> bool:
    """``widget.update(content)`` only when it differs from what the widget shows: an update, even
    with the same text, repaints the widget and (with ``layout``) re-lays out the screen, which at
    2 Hz was most of the app's idle CPU. Returns whether it updated."""
    if getattr(widget, "_hydra_shown", None) == content:
        return False
    widget._hydra_shown = content  # type: ignore[attr-defined]
    widget.update(content, layout=layout)
    return True
