"""Agent pane: champion version and family, each detector's statistic against its threshold, the
last diagnosis and its evidence, experiments with progress and elapsed time, the pending approval
and the last promotion or rollback."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from hydra_tui.widgets.view import AgentView


def bar(fraction: float, width: int = 10) -> str:
    n = max(0, min(width, round(fraction * width)))
    return "█" * n + "░" * (width - n)


def agent_text(a: AgentView) -> Text:
    t = Text()
    t.append("Champion ", style="dim")
    t.append(f"{a.champion or '—'}", style="bold")
    if a.family:
        t.append(f" ({a.family})")
    if not a.enabled:
        t.append("\nagent off (agent.enabled=false)", style="dim")
        if a.last_change:
            t.append(f"\nLast     {a.last_change}")
        return t
    t.append(f"  phase {a.phase}\n", style="magenta")
    for name, stat, thr in a.detectors[:6]:
        alarm = stat is not None and thr is not None and stat >= thr
        s = "—" if stat is None else f"{stat:.3g}"
        th = "—" if thr is None else f"{thr:.3g}"
        t.append(f"  {name:<24} {s:>8} / {th:<8}\n", style="bold red" if alarm else "")
    if a.diagnosis:
        t.append("Diagnosis ", style="dim")
        t.append(a.diagnosis + "\n")
        if a.evidence:
            t.append(f"  {a.evidence}\n", style="dim")
    for e in a.experiments:
        el = "" if e.elapsed_s is None else f" {e.elapsed_s:.0f}s"
        t.append(f"  {e.hypothesis[:20]:<20} {bar(e.progress)} {e.status}{el}\n")
    if a.pending:
        t.append("Pending  ", style="dim")
        t.append(f"{a.pending} (a to approve)\n", style="bold yellow")
    if a.last_change:
        t.append("Last     ", style="dim")
        t.append(a.last_change)
    return t


class AgentPane(Static):
    def show(self, a: AgentView) -> None:
        self.update(agent_text(a))
