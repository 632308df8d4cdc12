"""The command palette lists every HydraApp action and runs the one picked, as its key would."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.command import CommandPalette

from hydra_tui.palette import COMMANDS, HydraCommands

CONTRACT = {"toggle_pause", "force_cycle", "reconciliation", "journal", "model", "approve", "rollback",
            "flatten", "help", "faster", "step_day", "quit"}


class Recorder(App[None]):
    COMMANDS = {HydraCommands}

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

    def __getattr__(self, name: str) -> Any:  # action_<x> for every contract action records x
        if name.startswith("action_") and name[7:] in CONTRACT:
            return lambda: self.ran.append(name[7:])
        raise AttributeError(name)


def test_every_contract_action_has_a_command_with_help() -> None:
    assert {a for _, a, _ in COMMANDS} == CONTRACT
    assert all(len(text) > 10 for _, _, text in COMMANDS)


async def test_search_and_run_from_the_palette() -> None:
    app = Recorder()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"reconcil")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.ran == ["reconciliation"]


async def test_discover_lists_all_actions() -> None:
    app = Recorder()
    async with app.run_test():
        provider = HydraCommands(app.screen)
        hits = [h async for h in provider.discover()]
        assert [h.text for h in hits] == [n for n, _, _ in COMMANDS]
        journal = next(h for h in hits if h.text == "Journal")
        await journal.command()
        assert app.ran == ["journal"]
