"""The Textual app with the real engine on the embedded exchange, driven by Pilot."""

from __future__ import annotations

from typing import Any

from tui_helpers import click_into, header, make_app, until

from hydra_engine.config import load_settings
from hydra_tui.app import HydraApp
from hydra_tui.screens.confirm import ConfirmScreen, PickMarketScreen


async def test_app_plays_days_and_shows_the_panes(tmp_path, sim_universe) -> None:
    app = make_app(tmp_path, sim_universe)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None and app.days_played >= 2, what="two days played")
        await until(pilot, lambda: len(app.view.fills) > 0 and app.view.cycles_run == 4, what="fills and cycles shown")
        assert "SIM" in header(app) and "ACTIVE" in header(app)
        assert app.query_one("#fills").row_count == len(app.view.fills)
        assert app.view.net_liquidation and app.view.cycles_run == 4
        engine = app.engine
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running or app.engine is None, what="quit")
    assert engine._stopped


async def test_pause_key_is_shown_and_persisted_and_a_forced_cycle_repeat_is_duplicate(tmp_path, sim_universe) -> None:
    app = make_app(tmp_path, sim_universe, days=0)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None, what="engine started")
        engine = app.engine
        await pilot.press("p")
        await until(pilot, lambda: engine.status().paused, what="paused")
        await until(pilot, lambda: "PAUSED" in header(app), what="PAUSED shown")
        assert app._bindings.key_to_bindings["p"][0].description == "Resume"
        cmds = [e.command for e in await engine.store.ops.recent(20, kind="COMMAND")]
        assert "pause" in cmds
        await pilot.press("p")
        await until(pilot, lambda: not engine.status().paused, what="resumed")
        cycles = engine.status().cycles_run
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, PickMarketScreen), what="market picker")
        await pilot.click("#m-CL")
        await until(pilot, lambda: any("force cycle CL: FINISHED" in str(n.message) for n in app._notifications),
                    what="the forced cycle ran")
        assert engine.status().cycles_run == cycles + 1
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, PickMarketScreen), what="market picker again")
        await pilot.click("#m-CL")
        await until(pilot, lambda: any("force cycle CL: DUPLICATE" in str(n.message) for n in app._notifications),
                    what="the repeat is DUPLICATE")
        assert engine.status().cycles_run == cycles + 1
        await pilot.press("q")


async def test_quit_with_orders_under_way_asks_first(tmp_path, sim_universe) -> None:
    """A decided order waiting for its session's open is under way: quitting asks first."""
    app = make_app(tmp_path, sim_universe, days=1)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None and app.days_played == 1, what="a day played")
        engine = app.engine
        await until(pilot, lambda: bool(engine.status().scheduled_orders), what="an order waiting for its session")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="quit confirmation")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.engine is engine and not engine._stopped
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="quit confirmation again")
        await pilot.click("#confirm")
        await until(pilot, lambda: engine._stopped, what="engine stopped")


async def test_live_gate_shows_the_modal_before_any_engine_and_cancel_exits(tmp_path) -> None:
    made: list[Any] = []
    settings = load_settings(None, {})

    async def probe() -> str:
        return "U7654321"

    app = HydraApp(settings, data_dir=tmp_path, needs_live=True, account_probe=probe,
                   engine_factory=lambda **kw: made.append(kw))
    import os

    os.environ["HYDRA_LIVE_CONFIRMED"] = "true"
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            from hydra_tui.screens.live_modal import LiveConfirmScreen

            await until(pilot, lambda: isinstance(app.screen, LiveConfirmScreen), what="live modal")
            assert app.screen.focused is not None and app.screen.focused.id == "cancel"
            assert not made, "an engine was made before the operator confirmed"
            await pilot.press("escape")
            await until(pilot, lambda: not app.is_running, what="exit")
    finally:
        os.environ.pop("HYDRA_LIVE_CONFIRMED", None)
    assert not made and app.return_code == 2 and "cancelled" in app.exit_message


async def test_live_modal_confirms_only_after_live_is_typed(tmp_path) -> None:
    made: list[Any] = []

    class FakeEngine:
        driver = None

        def __init__(self) -> None:
            from hydra_engine.events import EventBus

            self.bus = EventBus()

        async def start(self) -> None:
            raise RuntimeError("fake engine: not started")

        async def stop(self) -> None:
            pass

    def factory(**kw: Any) -> FakeEngine:
        made.append(kw)
        return FakeEngine()

    app = HydraApp(load_settings(None, {}), data_dir=tmp_path, needs_live=True, account_probe=None,
                   engine_factory=factory)
    app.settings = load_settings(None, {"broker.account": "DU1111111"})
    import os

    os.environ["HYDRA_LIVE_CONFIRMED"] = "true"
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            from hydra_tui.screens.live_modal import LiveConfirmScreen

            await until(pilot, lambda: isinstance(app.screen, LiveConfirmScreen), what="live modal")
            assert "DU1111111" in str(app.screen.query_one("#live-body").render())
            await click_into(pilot, "#live-input")
            await pilot.press("L", "I", "V")
            assert app.screen.query_one("#confirm").disabled
            await pilot.press("E")
            assert not app.screen.query_one("#confirm").disabled
            await pilot.click("#confirm")
            await until(pilot, lambda: bool(made), what="engine made after confirmation")
            assert made[0]["live_confirmed"] is True
    finally:
        os.environ.pop("HYDRA_LIVE_CONFIRMED", None)
