"""Agent pane: one row per market (champion version and family, phase, the detector nearest its
threshold, last diagnosis, pending approval) and, below, the selected market's detail: every
detector against its threshold, the diagnosis with its evidence, experiments with a progress bar
and elapsed time, the pending approval with the gate's evidence, the last promotion or rollback."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from hydra_tui.widgets.pane_table import PaneTable
from hydra_tui.widgets.table_diff import apply_rows, update_if_changed
from hydra_tui.widgets.view import AgentView, DetectorReading, MarketAgentView

COLUMNS = ("Market", "Champion", "Family", "Phase", "Worst detector", "Diagnosis", "Pending")
SHORT_PHASE = {"AWAITING_APPROVAL": "AWAITING", "EXPERIMENTING": "EXPERIMENT", "HYPOTHESIZING": "HYPOTHESIS",
               "DIAGNOSING": "DIAGNOSE", "OBSERVING": "OBSERVE", "EVALUATING": "EVALUATE"}
"""The table's phase names (the detail below shows the full one)."""


def bar(fraction: float, width: int = 10) -> str:
    n = max(0, min(width, round(fraction * width)))
    return "█" * n + "░" * (width - n)


def reading_text(d: DetectorReading | None) -> Text:
    """``name stat/threshold``, red when at or past the threshold."""
    if d is None:
        return Text("—", style="dim")
    s = "—" if d.statistic is None else f"{d.statistic:.3g}"
    th = "—" if d.threshold is None else f"{d.threshold:.3g}"
    op = "≤" if d.lower_alarms else "/"
    return Text(f"{d.name} {s}{op}{th}", style="bold red" if d.alarm else "")


def short_version(version: str | None) -> str:
    """``v0003`` of ``v0003-5be1c0aa``: the registry's sequence number is unique in a store (the
    detail below shows the whole version)."""
    return (version or "—").split("-", 1)[0]


def market_row(m: MarketAgentView) -> tuple[Any, ...]:
    pending = Text(f"{short_version(m.pending.version)} (a)", style="bold yellow") if m.pending else Text("—", style="dim")
    phase_style = "bold yellow" if m.phase == "AWAITING_APPROVAL" else "magenta"
    phase = Text(SHORT_PHASE.get(m.phase, m.phase), style=phase_style)
    if m.derisked is not None:
        phase.append(f" de-risk x{m.derisked:.2g}", style="bold red")
    return (m.market, short_version(m.champion), m.family or "—", phase, reading_text(m.worst),
            m.diagnosis_kind or "—", pending)


def detail_text(m: MarketAgentView | None, enabled: bool = True) -> Text:
    t = Text()
    if m is None:
        t.append("no market yet", style="dim")
        return t
    t.append(f"{m.market} ", style="bold")
    t.append("champion ", style="dim")
    t.append(m.champion or "—", style="bold")
    if m.family:
        t.append(f" ({m.family})")
    if not enabled:
        t.append("\nagent off (agent.enabled = false): the champion trades, nothing heals", style="dim")
        return t
    t.append(f"  phase {m.phase}", style="magenta")
    if m.autonomy:
        t.append(f"  autonomy {m.autonomy}", style="dim")
    if m.derisked is not None:
        t.append(f"\nDE-RISKED: size x{m.derisked:.2g} until a candidate passes or the champion changes",
                 style="bold red")
    t.append("\n")
    for d in m.detectors[:8]:
        s = "—" if d.statistic is None else f"{d.statistic:.3g}"
        th = "—" if d.threshold is None else f"{d.threshold:.3g}"
        op = "alarm ≤" if d.lower_alarms else "alarm ≥"
        t.append(f"  {d.name:<24} {s:>8}  {op} {th:<8}\n", style="bold red" if d.alarm else "")
    if not m.detectors:
        t.append("  detectors warming up (no statistic yet)\n", style="dim")
    t.append("Diagnosis ", style="dim")
    t.append((m.diagnosis or "none yet") + "\n")
    if m.evidence:
        t.append(f"  {m.evidence}\n", style="dim")
    for e in m.experiments[-4:]:
        el = "" if e.elapsed_s is None else f" {e.elapsed_s:.0f}s"
        what = e.outcome if e.status != "RUNNING" and e.outcome else e.status
        t.append(f"  {e.hypothesis.split(':', 1)[0][:22]:<22} {bar(e.progress)} {what}{el}\n",
                 style="cyan" if e.status == "RUNNING" else "")
    if m.pending is not None:
        p = m.pending
        t.append("Pending  ", style="dim")
        t.append(f"{p.version} ({p.hypothesis.split(':', 1)[0]}) awaits approval: a approves\n", style="bold yellow")
        t.append(f"  gate: {p.gate}\n", style="dim")
    if m.last_change:
        t.append("Last     ", style="dim")
        t.append(m.last_change)
    return t


class AgentPane(Vertical):
    """``show`` renders an ``AgentView``; moving the cursor in the market table selects the detail."""

    DEFAULT_CSS = """
    AgentPane #agent-markets { height: auto; max-height: 6; }
    AgentPane #agent-detail-box { height: 1fr; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.selected: str | None = None
        self.view = AgentView()

    def compose(self) -> ComposeResult:
        yield PaneTable(id="agent-markets", cursor_type="row")
        with VerticalScroll(id="agent-detail-box"):
            yield Static(id="agent-detail")

    def on_mount(self) -> None:
        self.query_one("#agent-markets", DataTable).add_columns(*COLUMNS)

    def show(self, a: AgentView) -> None:
        self.view = a
        apply_rows(self.query_one("#agent-markets", DataTable), {m.market: market_row(m) for m in a.markets})
        self._show_detail()

    def selected_market(self) -> MarketAgentView | None:
        return self.view.market(self.selected)

    def _show_detail(self) -> None:
        update_if_changed(self.query_one("#agent-detail", Static), detail_text(self.selected_market(), self.view.enabled))

    @on(DataTable.RowHighlighted, "#agent-markets")
    def _market_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selected = event.row_key.value
        self._show_detail()
