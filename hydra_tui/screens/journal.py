"""Journal screen: the agent's journal and the operator journal in one table, newest first,
filtered by type and outcome. Read through the engine's store in a worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Select, Static

from hydra_tui.widgets.pane_table import PaneTable

ALL = "*"
ROWS = 500
COLUMNS = ("At", "Source", "Type", "Outcome", "Market", "Summary")


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One line of either journal. ``at`` is ISO UTC: the agent stamps wall time, the operator
    journal the engine clock (simulated in lock-step), so rows are ordered within each source by id."""

    key: str
    at: str
    source: str
    """"agent" or "operator"."""
    type: str
    outcome: str
    market: str
    summary: str


def merge_rows(agent: list[Any], ops: list[Any]) -> list[JournalRow]:
    """Both journals as rows, newest first (by time stamp, then id)."""
    rows = [JournalRow(f"a{e.id}", e.at, "agent", e.entry_type, e.outcome, getattr(e, "market", ""), e.summary) for e in agent]
    rows += [JournalRow(f"o{e.id}", e.at.isoformat(), "operator", e.kind.lower(), e.command, "", e.message)
             for e in ops]
    return sorted(rows, key=lambda r: (r.at, r.key), reverse=True)


def filter_rows(rows: list[JournalRow], type_: str = ALL, outcome: str = ALL) -> list[JournalRow]:
    return [r for r in rows if (type_ == ALL or r.type == type_) and (outcome == ALL or r.outcome == outcome)]


class JournalScreen(Screen[None]):
    """Agent and operator journal; Select filters by type and outcome."""

    CSS_PATH = "journal.tcss"
    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close"),
                Binding("g", "reload", "Reload")]

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine = engine
        self.rows: list[JournalRow] = []
        self.loaded = asyncio.Event()
        """Set when a load finished (shown, said why not, or failed): tests and callers wait on it."""

    def compose(self) -> ComposeResult:
        with Vertical(id="journal-body"):
            yield Static("Journal: agent and operator, newest first", id="journal-title")
            with Horizontal(id="journal-filters"):
                yield Select[str]([], prompt="type: all", id="journal-type", allow_blank=True)
                yield Select[str]([], prompt="outcome: all", id="journal-outcome", allow_blank=True)
            yield Static("loading...", id="journal-count")
            yield PaneTable(id="journal-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#journal-table", DataTable).add_columns(*COLUMNS)
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.loaded.clear()
        self.load()

    @work(exclusive=True, group="journal", exit_on_error=False)
    async def load(self) -> None:
        try:
            if self.engine is None or self.engine.store is None:
                self.query_one("#journal-count", Static).update("no engine running: no journal")
                return
            from hydra_engine.agent.journal import ExperimentJournal

            agent = await ExperimentJournal(self.engine.store.conn).query(limit=ROWS)
            ops = await self.engine.store.ops.recent(limit=ROWS)
            self.show(merge_rows(agent, ops))
        except Exception as exc:  # noqa: BLE001 - shown on the screen, never a traceback
            self.query_one("#journal-count", Static).update(f"cannot read the journal: {type(exc).__name__}: {exc}")
        finally:
            self.loaded.set()

    def show(self, rows: list[JournalRow]) -> None:
        self.rows = rows
        for sel_id, values in (("#journal-type", {r.type for r in rows}),
                               ("#journal-outcome", {r.outcome for r in rows if r.outcome})):
            sel = self.query_one(sel_id, Select)
            current = sel.value
            sel.set_options([(v, v) for v in sorted(values)])
            if current in values:
                sel.value = current
        self._render_table()

    def filters(self) -> tuple[str, str]:
        t = self.query_one("#journal-type", Select).value
        o = self.query_one("#journal-outcome", Select).value
        return (t if isinstance(t, str) else ALL, o if isinstance(o, str) else ALL)

    @on(Select.Changed)
    def _filter_changed(self, _: Select.Changed) -> None:
        self._render_table()

    def _render_table(self) -> None:
        shown = filter_rows(self.rows, *self.filters())
        table = self.query_one("#journal-table", DataTable)
        with self.app.batch_update():
            table.clear()
            for r in shown:
                table.add_row(r.at[:19].replace("T", " "), r.source, r.type, r.outcome, r.market, r.summary, key=r.key)
        self.query_one("#journal-count", Static).update(f"{len(shown)} of {len(self.rows)} entries")
