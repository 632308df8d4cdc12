"""The red live-trading confirmation: names the account and the port, and proceeds only when the
operator types LIVE and presses Trade live. Cancel has the focus; escape cancels.

It is shown after the settings' ``trading_mode = "live"`` and ``HYDRA_LIVE_CONFIRMED=true``
checks passed and before any order-capable connection is opened.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

LIVE_PORTS = frozenset({4001, 7496})


def needs_live_confirmation(kind: str, port: int | None, trading_mode: str) -> bool:
    """A live port or live mode: the operator confirms before any order-capable session."""
    return kind == "ib" and (trading_mode == "live" or (port is not None and port in LIVE_PORTS))


class LiveConfirmScreen(ModalScreen[bool]):
    """Dismisses with True only after ``LIVE`` was typed and Trade live pressed."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#cancel"
    """Cancel has the focus: Textual focuses this when the screen activates (focusing it in
    ``on_mount`` lost, now and then, to the default auto-focus of the first input)."""

    def __init__(self, account: str, port: int | None) -> None:
        super().__init__(id="live-modal")
        self.account = account or "(read on connection)"
        self.port = port

    def compose(self) -> ComposeResult:
        with Vertical(id="live-box"):
            yield Label("LIVE TRADING", id="live-title")
            yield Label(f"Account {self.account} on port {self.port}: orders will use real money.", id="live-body")
            yield Label("Type LIVE to continue.", id="live-hint")
            yield Input(placeholder="LIVE", id="live-input")
            with Horizontal(id="live-buttons"):
                yield Button("Cancel", id="cancel", variant="default")
                yield Button("Trade live", id="confirm", variant="error", disabled=True)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value.strip() != "LIVE"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == "LIVE":
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            if self.query_one("#live-input", Input).value.strip() == "LIVE":
                self.dismiss(True)
            return
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)
