"""Reconciliation screen: is the slippage model honest? The plan's panel per market, the pooled
line, the optimism warning and a predicted-vs-actual scatter, read through the engine."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from hydra_tui.widgets.pane_table import PaneTable

OPTIMISM_WARNING = "Paper fills are significantly optimistic"
PESSIMISM_WARN_ABOVE = 1.5
SCATTER_FILLS = 2000
COLUMNS = ("Market", "N fills", "Mean pred", "Mean actual", "Bias", "Bias bps", "RMSE", "Corr", "Pessimism",
           "Verdict")
"""Price units per market (bps for the POOLED line); Corr is Pearson's; Pessimism is mean actual /
mean predicted in bps."""


def bias_colour(bias_price: float) -> str:
    """The plan's colour for a bias in price units: green < 0.1, yellow < 0.5, red >= 0.5 (by size)."""
    if math.isnan(bias_price):
        return "dim"
    size = abs(bias_price)
    return "green" if size < 0.1 else "yellow" if size < 0.5 else "red"


def _f(v: float, spec: str = ".4f") -> str:
    return "-" if v is None or math.isnan(v) else format(v, spec)


@dataclass(frozen=True, slots=True)
class ScatterPoint:
    """One fill's predicted and actual slippage in bps of its arrival mid (bps pool across markets)."""

    symbol: str
    predicted_bps: float
    actual_bps: float


def report_rows(report: Any) -> list[tuple[Any, ...]]:
    """One row per market (price units and bps) and, for the all-markets report, the POOLED line
    (bps only: price units do not add across markets)."""
    rows: list[tuple[Any, ...]] = []
    for m in report.markets:
        p, b = m.price, m.bps
        rows.append((m.symbol or "-", str(m.n_fills), _f(p.mean_predicted), _f(p.mean_actual),
                     Text(_f(p.bias, "+.4f"), style=bias_colour(p.bias)), _f(b.bias, "+.2f"), _f(p.rmse),
                     _f(p.pearson, ".3f"), _f(b.pessimism_multiplier, ".2f"), m.verdict))
    if report.pooled is not None:
        q = report.pooled
        rows.append(("POOLED (bps)", str(q.n_fills), _f(q.bps.mean_predicted, ".2f"), _f(q.bps.mean_actual, ".2f"),
                     Text("-", style="dim"), _f(q.bps.bias, "+.2f"), _f(q.bps.rmse, ".2f"), _f(q.bps.pearson, ".3f"),
                     _f(q.pessimism_multiplier, ".2f"), report.verdict))
    return rows


def optimistic_markets(report: Any) -> list[str]:
    """Markets (and POOLED) whose pessimism multiplier exceeds 1.5: paper fills look too good."""
    out = [m.symbol or "-" for m in report.markets if m.pessimism_multiplier > PESSIMISM_WARN_ABOVE]
    if report.pooled is not None and report.pooled.pessimism_multiplier > PESSIMISM_WARN_ABOVE:
        out.append("POOLED")
    return out


def scatter_points(fills: list[Any]) -> list[ScatterPoint]:
    """Live fills with both figures and a positive arrival mid, in bps."""
    pts = []
    for f in fills:
        if f.data_type != "live" or not f.arrival_mid or f.predicted_slippage is None or f.actual_slippage is None:
            continue
        k = 1e4 / f.arrival_mid
        pts.append(ScatterPoint(f.symbol, f.predicted_slippage * k, f.actual_slippage * k))
    return pts


class ReconciliationScreen(Screen[None]):
    """Predicted vs actual slippage over the journalled fills; loaded in a worker, never on the loop."""

    CSS_PATH = "reconciliation.tcss"
    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close"),
                Binding("g", "reload", "Reload")]

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine = engine
        self.report: Any = None
        self.loaded = asyncio.Event()
        """Set when a load finished (shown, said why not, or failed): tests and callers wait on it."""

    def compose(self) -> ComposeResult:
        with Vertical(id="recon-body"):
            yield Static("Reconciliation: predicted vs actual slippage", id="recon-title")
            yield Static("loading...", id="recon-headline")
            yield PaneTable(id="recon-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="recon-warning")
            yield PlotextPlot(id="recon-scatter")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#recon-table", DataTable)
        table.add_columns(*COLUMNS)
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.loaded.clear()
        self.load()

    @work(exclusive=True, group="reconciliation", exit_on_error=False)
    async def load(self) -> None:
        try:
            if self.engine is None or self.engine.store is None:
                self.query_one("#recon-headline", Static).update("no engine running: nothing to reconcile")
                return
            report = await self.engine.run_reconciliation()
            fills = await self.engine.fill_journal.fills(limit=SCATTER_FILLS)
            self.show(report, scatter_points(fills))
        except Exception as exc:  # noqa: BLE001 - shown on the screen, never a traceback
            self.query_one("#recon-headline", Static).update(Text(f"cannot reconcile: {type(exc).__name__}: {exc}",
                                                                  style="bold red"))
        finally:
            self.loaded.set()

    def show(self, report: Any, points: list[ScatterPoint]) -> None:
        """Fill every widget from one report and the scatter's points."""
        self.report = report
        head = Text()
        head.append(f"{report.n_fills} live fill(s) in {len(report.markets)} market(s), "
                    f"{report.n_delayed_excluded} delayed excluded; verdict ")
        head.append(report.verdict, style="bold")
        head.append(f" ({report.verdict_reason})")
        self.query_one("#recon-headline", Static).update(head)
        table = self.query_one("#recon-table", DataTable)
        with self.app.batch_update():
            table.clear()
            for row in report_rows(report):
                table.add_row(*row, key=str(row[0]))
        warn = self.query_one("#recon-warning", Static)
        bad = optimistic_markets(report)
        if bad:
            warn.update(Text(f"{OPTIMISM_WARNING} ({', '.join(bad)}: pessimism multiplier > "
                             f"{PESSIMISM_WARN_ABOVE})", style="bold red"))
            warn.add_class("warn")
        else:
            warn.update(Text("Pessimism multipliers within 1.5: no optimism warning", style="green"))
            warn.remove_class("warn")
        self._plot(points)

    def _plot(self, points: list[ScatterPoint]) -> None:
        widget = self.query_one("#recon-scatter", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.title("Predicted vs actual slippage (bps of arrival mid)")
        plt.xlabel("predicted bps")
        plt.ylabel("actual bps")
        for symbol in sorted({p.symbol for p in points}):
            mine = [p for p in points if p.symbol == symbol]
            plt.scatter([p.predicted_bps for p in mine], [p.actual_bps for p in mine], label=symbol)
        if points:
            lo = min(min(p.predicted_bps, p.actual_bps) for p in points)
            hi = max(max(p.predicted_bps, p.actual_bps) for p in points)
            plt.plot([lo, hi], [lo, hi], label="actual = predicted")
        widget.refresh()
