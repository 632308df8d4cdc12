"""The secondary screens and the palette through the real HydraApp (keys r, j, m, ?, ctrl+p) on
the embedded exchange after a short lock-step run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hydra_engine.config import load_settings

app_module = pytest.importorskip("hydra_tui.app")

ALWAYS_TAKE_A_SIDE = {"execution.long_threshold": 0.5, "execution.short_threshold": 0.5}


async def until(pilot: Any, cond: Any, timeout: float = 60.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


async def test_keys_open_each_screen_and_escape_closes_it(tmp_path, sim_universe) -> None:
    from textual.widgets import DataTable

    from hydra_tui.screens.help import HelpScreen
    from hydra_tui.screens.journal import JournalScreen
    from hydra_tui.screens.model import ModelScreen
    from hydra_tui.screens.reconciliation import ReconciliationScreen

    settings = load_settings(None, ALWAYS_TAKE_A_SIDE)
    app = app_module.HydraApp(settings, data_dir=tmp_path, universe=sim_universe, agent=False, day_seconds=0, days=3)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None and app.days_played >= 3, what="three days played")
        for key, cls in (("r", ReconciliationScreen), ("j", JournalScreen), ("m", ModelScreen),
                         ("question_mark", HelpScreen)):
            await pilot.press(key)
            await until(pilot, lambda cls=cls: isinstance(app.screen, cls), what=f"{cls.__name__} on {key}")
            screen = app.screen
            if hasattr(screen, "loaded"):
                await asyncio.wait_for(screen.loaded.wait(), timeout=30)
            if cls is ReconciliationScreen:
                assert screen.report is not None and screen.report.n_fills == len(await app.engine.fill_journal.fills())
            if cls is JournalScreen:
                assert any(r.source == "operator" and "engine started" in r.summary for r in screen.rows)
            if cls is HelpScreen:
                keys = {str(screen.query_one("#help-table", DataTable).get_row_at(i)[0])
                        for i in range(screen.query_one("#help-table", DataTable).row_count)}
                assert {"p", "c", "r", "j", "m", "a", "b", "f", "?", "q", "ctrl+p"} <= keys
            await pilot.press("escape")
            await until(pilot, lambda cls=cls: not isinstance(app.screen, cls), what=f"{cls.__name__} closed")

        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"journal")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JournalScreen), what="journal from the palette")
        await pilot.press("escape")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running or app.engine is None, what="quit")


async def test_the_app_says_so_where_the_exchanges_history_ends(tmp_path, sim_universe, monkeypatch) -> None:
    import datetime as dt

    monkeypatch.setattr(sim_universe, "end", dt.date(2018, 1, 4))
    settings = load_settings(None, ALWAYS_TAKE_A_SIDE)
    app = app_module.HydraApp(settings, data_dir=tmp_path, universe=sim_universe, agent=False, day_seconds=0)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: "history ends on 2018-01-04" in app.message, what="the end-of-history message")
        assert app.days_played == 3  # 01-02 .. 01-04, then nothing more to play
        await pilot.pause(0.5)
        assert app.days_played == 3
