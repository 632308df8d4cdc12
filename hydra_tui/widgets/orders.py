"""Working orders pane: limit, filled/total, patience step (reprices so far), age; the order ref last."""

from __future__ import annotations

from rich.text import Text

from hydra_tui.widgets.pane_table import PaneTable
from hydra_tui.widgets.table_diff import apply_rows
from hydra_tui.widgets.view import View


def age(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class OrdersTable(PaneTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("Side", "Contract", "Limit", "Filled", "Step", "Age", "Status", "Ref")

    def show(self, v: View) -> None:
        rows = {o.order_ref: (Text(o.side, style="green" if o.side == "BUY" else "red"), o.local_symbol,
                              f"{o.limit:,.4g}", f"{o.filled:g}/{o.qty:g}", str(o.step), age(o.age_s), o.status,
                              o.order_ref)
                for o in v.orders}
        apply_rows(self, rows)
