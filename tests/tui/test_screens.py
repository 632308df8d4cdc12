"""Secondary screens (reconciliation, journal, model, help) inside a tiny host App, on a real
Engine that played five lock-step days on the embedded exchange in a tmp data dir."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import DataTable, Select, Static

from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_tui.screens.help import HelpScreen
from hydra_tui.screens.journal import JournalScreen
from hydra_tui.screens.model import ModelScreen
from hydra_tui.screens.reconciliation import (
    OPTIMISM_WARNING,
    ReconciliationScreen,
    bias_colour,
)
from hydra_tui.widgets.view import agent_loops

ALWAYS_TAKE_A_SIDE = {"execution.long_threshold": 0.5, "execution.short_threshold": 0.5}


class Host(App[None]):
    """Stands in for HydraApp: holds the engine, pushes one screen."""

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine = engine


@pytest.fixture
async def engine(tmp_path: Path, sim_universe: Any) -> Any:
    eng = Engine(load_settings(None, ALWAYS_TAKE_A_SIDE), data_dir=tmp_path, universe=sim_universe, seed=7)
    await eng.start()
    try:
        await eng.run_days(5)
        yield eng
    finally:
        await eng.stop()


async def _loaded(screen: Any, pilot: Any) -> None:
    """Wait for the screen's own load (its worker sets ``loaded`` when done), then one refresh."""
    await asyncio.wait_for(screen.loaded.wait(), timeout=30)
    await pilot.pause()


def test_bias_colours_follow_the_plan() -> None:
    assert [bias_colour(x) for x in (0.0, 0.099, -0.099, 0.1, 0.49, -0.5, 0.5, 3.0)] == [
        "green", "green", "green", "yellow", "yellow", "red", "red", "red"]
    assert bias_colour(float("nan")) == "dim"


async def test_reconciliation_journal_model_on_a_real_engine(engine: Any) -> None:
    fills = await engine.fill_journal.fills()
    assert fills, "the champion should have traded in five days"
    app = Host(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = ReconciliationScreen(engine)
        await app.push_screen(screen)
        await _loaded(screen, pilot)
        table = screen.query_one("#recon-table", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        report = screen.report
        assert report is not None and report.is_pooled
        assert [str(r[0]) for r in rows] == [m.symbol for m in report.markets] + ["POOLED (bps)"]
        assert sum(int(r[1]) for r in rows[:-1]) == report.n_fills == int(rows[-1][1])
        first = report.markets[0]
        assert rows[0][4].style == bias_colour(first.price.bias)  # the bias cell carries its colour
        warning = str(screen.query_one("#recon-warning", Static).render())
        assert (OPTIMISM_WARNING in warning) == any(m.pessimism_multiplier > 1.5 for m in report.markets)
        await pilot.press("escape")
        assert not isinstance(app.screen, ReconciliationScreen)

        screen = JournalScreen(engine)
        await app.push_screen(screen)
        await _loaded(screen, pilot)
        assert {r.source for r in screen.rows} == {"agent", "operator"}
        assert screen.rows == sorted(screen.rows, key=lambda r: (r.at, r.key), reverse=True)
        table = screen.query_one("#journal-table", DataTable)
        assert table.row_count == len(screen.rows)
        screen.query_one("#journal-type", Select).value = "note"
        await pilot.pause()
        assert 0 < table.row_count < len(screen.rows)
        assert {str(table.get_row_at(i)[2]) for i in range(table.row_count)} == {"note"}
        await pilot.press("q")
        assert not isinstance(app.screen, JournalScreen)

        screen = ModelScreen(engine)
        await app.push_screen(screen)
        await _loaded(screen, pilot)
        shown = str(screen.query_one("#model-champion", Static).render())
        registries = [loop.registry for loop in agent_loops(engine).values()]
        champs = [await r.champion_record() for r in registries]
        assert champs and all(c is not None and c.version in shown for c in champs)
        history = screen.query_one("#model-history", DataTable)
        versions = [rec for r in registries for rec in await r.history()]
        versions.sort(key=lambda rec: rec.created_at, reverse=True)
        assert history.row_count == len(versions)
        assert history.get_row_at(0)[1] == versions[0].version
        await pilot.press("escape")
        assert not isinstance(app.screen, ModelScreen)


async def test_help_lists_every_binding_and_closes() -> None:
    keys = [("p", "Pause / resume"), ("r", "Reconciliation"), ("q", "Quit")]
    app = Host(None)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = HelpScreen(keys)
        await app.push_screen(screen)
        await pilot.pause()
        table = screen.query_one("#help-table", DataTable)
        listed = [tuple(map(str, table.get_row_at(i))) for i in range(table.row_count)]
        assert listed[:3] == keys and ("ctrl+p", "Command palette: every action by name") in listed
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_screens_without_an_engine_say_so() -> None:
    app = Host(None)
    async with app.run_test(size=(120, 40)) as pilot:
        for cls, widget in ((ReconciliationScreen, "#recon-headline"), (JournalScreen, "#journal-count"),
                            (ModelScreen, "#model-champion")):
            screen = cls(None)
            await app.push_screen(screen)
            await _loaded(screen, pilot)
            assert "no engine running" in str(screen.query_one(widget, Static).render())
            await pilot.press("escape")
