"""Model screen: the champion and its lineage, the candidates, every registered version with its
metrics, and the registry's audit trail. Read through the engine's registry in a worker."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from hydra_tui.widgets.pane_table import PaneTable

METRICS = ("sharpe", "hit_rate", "auc", "pnl", "n_train")
"""Metrics shown as columns when a record has them; the rest are in the champion panel."""
COLUMNS = ("Market", "Version", "Status", "Family", "Parent", "Mutation", "Trained", "Created") + METRICS


def _metric(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    return "-" if v is None else str(v)


def model_row(rec: Any) -> tuple[Any, ...]:
    style = {"champion": "bold green", "candidate": "yellow", "rejected": "red"}.get(rec.status, "")
    trained = f"{rec.train_start or '?'}..{rec.train_end or '?'}" if rec.train_start or rec.train_end else "-"
    return (rec.market or "-", rec.version, Text(rec.status, style=style), rec.family, rec.parent or "-", rec.mutation or "-",
            trained, rec.created_at[:19].replace("T", " "), *(_metric(rec.metrics.get(k)) for k in METRICS))


def champions_text(champions: list[tuple[str, Any, list[Any]]]) -> Text:
    """Every market's champion with its lineage (one block per market)."""
    if not champions:
        return Text("no champion yet: the engine trades nothing until one is registered", style="yellow")
    out = Text()
    for i, (market, rec, lineage) in enumerate(champions):
        if i:
            out.append("\n")
        if rec is None:
            out.append(f"{market or 'all markets'}: no champion yet: this market trades nothing until one is registered",
                       style="yellow")
            continue
        out.append_text(champion_text(rec, lineage))
    return out


def champion_text(rec: Any, lineage: list[Any]) -> Text:
    if rec is None:
        return Text("no champion yet: the engine trades nothing until one is registered", style="yellow")
    out = Text()
    out.append("Champion ", style="bold")
    out.append(rec.version, style="bold green")
    out.append(f"  family {rec.family}" + (f"  market {rec.market}" if rec.market else ""))
    out.append(f"  promoted {rec.promoted_at or '-'}\n")
    out.append("Lineage: " + " <- ".join(f"{r.version} ({r.mutation or 'origin'})" for r in lineage) + "\n")
    metrics = ", ".join(f"{k} {_metric(v)}" for k, v in sorted(rec.metrics.items()) if not isinstance(v, (dict, list)))
    out.append("Metrics: " + (metrics or "-"))
    return out


class ModelScreen(Screen[None]):
    """Champion lineage, candidates and metrics."""

    CSS_PATH = "model.tcss"
    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close"),
                Binding("g", "reload", "Reload")]

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine = engine
        self.loaded = asyncio.Event()
        """Set when a load finished (shown, said why not, or failed): tests and callers wait on it."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="model-body"):
            yield Static("Models", id="model-title")
            yield Static("loading...", id="model-champion")
            yield Static("Candidates", classes="model-heading")
            yield PaneTable(id="model-candidates", cursor_type="row")
            yield Static("All versions, newest first", classes="model-heading")
            yield PaneTable(id="model-history", cursor_type="row", zebra_stripes=True)
            yield Static("Audit trail, newest first", classes="model-heading")
            yield PaneTable(id="model-events", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#model-candidates", DataTable).add_columns(*COLUMNS)
        self.query_one("#model-history", DataTable).add_columns(*COLUMNS)
        self.query_one("#model-events", DataTable).add_columns("At", "Kind", "Version", "Previous", "Reason")
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.loaded.clear()
        self.load()

    @work(exclusive=True, group="model", exit_on_error=False)
    async def load(self) -> None:
        try:
            reg = getattr(self.engine, "registry", None)
            if reg is None:
                self.query_one("#model-champion", Static).update("no engine running: no registry")
                return
            champions: list[tuple[str, Any, list[Any]]] = []
            candidates: list[Any] = []
            history: list[Any] = []
            for market in await reg.markets() or [""]:
                scoped = reg.for_market(market) if market else reg
                champ = await scoped.champion_record()
                champions.append((market, champ, await scoped.lineage(champ.version) if champ is not None else []))
                candidates += await scoped.candidates()
                history += await scoped.history(limit=200)
            history.sort(key=lambda r: r.created_at, reverse=True)
            self.show(champions, candidates, history[:200], await reg.events())
        except Exception as exc:  # noqa: BLE001 - shown on the screen, never a traceback
            self.query_one("#model-champion", Static).update(Text(f"cannot read the registry: {type(exc).__name__}: {exc}",
                                                                  style="bold red"))
        finally:
            self.loaded.set()

    def show(self, champions: list[tuple[str, Any, list[Any]]], candidates: list[Any], history: list[Any],
             events: list[Any]) -> None:
        """``champions``: (market, champion record or None, its lineage) for every market with models."""
        self.query_one("#model-champion", Static).update(champions_text(champions))
        with self.app.batch_update():
            for table_id, recs in (("#model-candidates", candidates), ("#model-history", history)):
                table = self.query_one(table_id, DataTable)
                table.clear()
                for rec in recs:
                    table.add_row(*model_row(rec), key=f"{rec.market}/{rec.version}")
            ev = self.query_one("#model-events", DataTable)
            ev.clear()
            for e in reversed(events[-200:]):
                ev.add_row(e.at[:19].replace("T", " "), e.kind, e.version, e.previous or "-", e.reason or "-")
