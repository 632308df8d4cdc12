"""Positions pane: contract month, quantity, average cost, mark, unrealized P&L, days to roll."""

from __future__ import annotations

from rich.text import Text

from hydra_tui.widgets.pane_table import PaneTable
from hydra_tui.widgets.table_diff import apply_rows
from hydra_tui.widgets.view import View


def _num(x: float | None, fmt: str = ",.2f") -> str:
    return "—" if x is None else format(x, fmt)


class PositionsTable(PaneTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("Contract", "Month", "Qty", "Avg cost", "Mark", "Unrealized", "Roll in")

    def show(self, v: View) -> None:
        rows = {}
        for p in v.positions:
            style = "green" if (p.unrealized or 0) >= 0 else "red"
            rows[p.local_symbol] = (p.local_symbol, p.month, f"{p.qty:+g}", _num(p.avg_cost, ",.4g"), _num(p.mark, ",.4g"),
                                    Text(_num(p.unrealized), style=style),
                                    "—" if p.days_to_roll is None else f"{p.days_to_roll}d")
        apply_rows(self, rows)
