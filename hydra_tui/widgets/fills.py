"""Fills pane: the plan's columns (Time, Symbol, Dir, Qty, Order Price, Fill Price, Pred Slip,
Actual Slip, Latency), BUY green and SELL red, newest first."""

from __future__ import annotations

from rich.text import Text

from hydra_tui.widgets.pane_table import PaneTable
from hydra_tui.widgets.table_diff import apply_rows
from hydra_tui.widgets.view import View

COLUMNS = ("Time", "Symbol", "Dir", "Qty", "Order Price", "Fill Price", "Pred Slip", "Actual Slip", "Latency")


def _p(x: float | None, fmt: str = ".4g") -> str:
    """Four significant figures; float noise around zero (1e-14 from a price difference) shows as 0."""
    if x is None:
        return "—"
    return "0" if abs(x) < 1e-9 else format(x, fmt)


class FillsTable(PaneTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns(*COLUMNS)

    def show(self, v: View) -> None:
        rows = {f.exec_id: (f"{f.time:%m-%d %H:%M}", f.symbol, Text(f.direction, style="bold green" if f.direction == "BUY"
                                                                    else "bold red"),
                            f"{f.qty:g}", _p(f.order_price), _p(f.fill_price), _p(f.predicted), _p(f.actual),
                            "—" if f.latency_ms is None else f"{f.latency_ms / 1000:.1f}s")
                for f in v.fills}
        apply_rows(self, rows)
