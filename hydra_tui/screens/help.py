"""Help screen: every binding the app has, key and what it does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from hydra_tui.widgets.pane_table import PaneTable


class HelpScreen(Screen[None]):
    """The bindings handed in by the app (key, description), plus Textual's palette and quit keys."""

    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close")]
    EXTRA = [("ctrl+p", "Command palette: every action by name"), ("ctrl+q", "Quit at once (Textual)"),
             ("escape / q", "Close this screen")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.key_help = list(bindings)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-body"):
            yield Static("HYDRA keys", id="help-title")
            yield PaneTable(id="help-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#help-table", DataTable)
        table.add_columns("Key", "Action")
        known = {k for k, _ in self.key_help}
        for key, text in self.key_help + [e for e in self.EXTRA if e[0] not in known]:
            table.add_row(key, text)

    def action_close(self) -> None:
        self.dismiss(None)
