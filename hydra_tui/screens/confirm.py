"""A yes/no modal for the actions that cannot be taken back: rollback, flatten, quit with working
orders. Cancel has the focus, so a stray Enter does nothing harmful."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True (confirmed) or False (cancel, escape)."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("y", "confirm", "Yes", show=False)]

    def __init__(self, title: str, body: str, confirm_label: str = "Confirm") -> None:
        super().__init__(classes="confirm")
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label(self.title_text, id="confirm-title")
            yield Label(self.body, id="confirm-body")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="cancel", variant="default")
                yield Button(self.confirm_label, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        self.dismiss(True)


class PickMarketScreen(ModalScreen[str | None]):
    """Pick all markets or one: dismisses with "" (all, when offered), a symbol, or None (cancel)."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, symbols: list[str], *, title: str = "Force today's cycle", allow_all: bool = True) -> None:
        super().__init__(classes="confirm")
        self.symbols = symbols
        self.title_text = title
        self.allow_all = allow_all

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label(self.title_text, id="confirm-title")
            with Horizontal(id="confirm-buttons"):
                if self.allow_all:
                    yield Button("All markets", id="all", variant="primary")
                for s in self.symbols:
                    yield Button(s, id=f"m-{s}")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#all" if self.allow_all else "#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        self.dismiss(None if bid == "cancel" else "" if bid == "all" else bid.removeprefix("m-"))

    def action_cancel(self) -> None:
        self.dismiss(None)
