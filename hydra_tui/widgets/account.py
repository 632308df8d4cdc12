"""Account pane: net liquidation, cash, daily P&L, drawdown from the peak and the equity curve."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from hydra_tui.widgets.table_diff import update_if_changed
from hydra_tui.widgets.view import View


def money(x: float | None) -> str:
    return "—" if x is None else f"{x:,.2f}"


def account_text(v: View) -> Text:
    t = Text()
    t.append("Net liq   ", style="dim")
    t.append(money(v.net_liquidation) + "\n", style="bold")
    t.append("Cash      ", style="dim")
    t.append(money(v.cash) + "\n")
    t.append("Daily P&L ", style="dim")
    pnl = v.daily_pnl
    t.append(money(pnl) + "\n", style="green" if pnl and pnl > 0 else "red" if pnl and pnl < 0 else "")
    t.append("Drawdown  ", style="dim")
    dd = v.drawdown
    t.append("—" if dd is None else f"{dd:.2%}", style="red" if dd and dd > 0.05 else "")
    t.append(f"\nCycles    {v.cycles_run}", style="dim")
    return t


class AccountPane(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="account-figures")
        yield Sparkline([], id="equity")

    def show(self, v: View) -> None:
        update_if_changed(self.query_one("#account-figures", Static), account_text(v))
        spark = self.query_one("#equity", Sparkline)
        data = list(v.equity[-200:])
        if list(spark.data or []) != data:
            spark.data = data
