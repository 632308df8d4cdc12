"""The header line: mode badge, connection and message age, trading state, agent phase, clock and
the countdown to each market's next decision."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.widgets import Static

from hydra_tui.widgets.table_diff import update_if_changed
from hydra_tui.widgets.view import View

BADGE_STYLE = {"SIM": "bold black on cyan", "PAPER": "bold black on yellow", "LIVE": "bold white on red"}
STATE_STYLE = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "bold red"}


def countdown(now: dt.datetime, at: dt.datetime | None) -> str:
    if at is None:
        return "—"
    s = max(0, int((at - now).total_seconds()))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    return f"{d}d{h:02d}h" if d else f"{h:d}h{m:02d}m"


def header_text(v: View) -> Text:
    t = Text()
    t.append(f" {v.mode} ", style=BADGE_STYLE.get(v.mode, "bold"))
    t.append("  ")
    conn_style = "green" if v.connected else "red"
    age = f" {v.last_message_age_s:.0f}s" if v.last_message_age_s is not None else ""
    t.append(f"● {v.connection}{age}", style=conn_style)
    t.append("  ")
    state = "PAUSED" if v.paused else v.trading_state
    t.append(state, style="bold yellow" if v.paused else STATE_STYLE.get(v.trading_state, "bold"))
    if v.breaker and v.trading_state != "ACTIVE":
        t.append(f" ({v.breaker})", style="red")
    t.append(f"  agent {v.agent_phase}", style="magenta")
    if v.now is not None:
        label = {"sim": "sim", "broker": "broker", "wall": ""}.get(v.clock_kind, v.clock_kind)
        t.append(f"  {label + ' ' if label else ''}{v.now.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", style="bold")
        t.append("  next", style="dim")
        for c in v.clocks:
            t.append(f" {c.symbol} {countdown(v.now, c.next_at)}", style="dim" if c.next_at is None else "")
    return t


class HydraHeader(Static):
    """One line of text; ``show`` replaces it with the view's."""

    DEFAULT_CSS = "HydraHeader { height: 1; }"

    def show(self, v: View) -> None:
        self.set_class(v.mode == "LIVE", "-live")
        update_if_changed(self, header_text(v), layout=False)  # one line, fixed height: no re-layout
