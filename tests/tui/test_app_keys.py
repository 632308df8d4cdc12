"""Every operator key (and the palette) on the real HydraApp with the real engine on the embedded
exchange: pause shown and persisted across a restart, approve promotes, rollback restores, flatten
leaves no position, faster and step-day, and the live modal against a real exchange session log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_helpers import SessionSpy, click_into, header, make_app, notified, until

from hydra_engine.agent.hypotheses import Hypothesis
from hydra_engine.config import load_settings
from hydra_engine.model.baseline import ModelSpec
from hydra_tui.app import HydraApp
from hydra_tui.screens.confirm import ConfirmScreen, PickMarketScreen
from hydra_tui.screens.live_modal import LiveConfirmScreen
from hydra_tui.widgets.view import agent_loops


def pause_label(app: HydraApp) -> str:
    return app._bindings.key_to_bindings["p"][0].description


async def pick_market_if_asked(pilot: Any, app: HydraApp, market: str) -> None:
    """With several markets the app asks which one; with one it goes straight to the confirmation."""
    await until(pilot, lambda: isinstance(app.screen, (PickMarketScreen, ConfirmScreen)), what="picker or confirm")
    if isinstance(app.screen, PickMarketScreen):
        await pilot.click(f"#m-{market}")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")


async def test_pause_is_shown_and_survives_an_app_restart(tmp_path: Path, sim_universe: Any) -> None:
    app = make_app(tmp_path, sim_universe, days=0)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None, what="engine started")
        engine = app.engine
        assert pause_label(app) == "Pause"
        await pilot.press("p")
        await until(pilot, lambda: "PAUSED" in header(app), what="PAUSED in the header")
        assert engine.status().paused and pause_label(app) == "Resume"
        await pilot.press("q")
        await until(pilot, lambda: engine._stopped, what="engine stopped")

    again = make_app(tmp_path, sim_universe, days=0)
    async with again.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: again.engine is not None and "PAUSED" in header(again), what="PAUSED after restart")
        assert again.engine.status().paused and pause_label(again) == "Resume"
        await pilot.press("p")
        await until(pilot, lambda: "PAUSED" not in header(again), what="resumed")
        assert not again.engine.status().paused and pause_label(again) == "Pause"
        commands = [e.command for e in await again.engine.store.ops.recent(50, kind="COMMAND")]
        assert "pause" in commands and "resume" in commands
        await pilot.press("q")


async def test_faster_and_step_day_keys(tmp_path: Path, sim_universe: Any) -> None:
    app = make_app(tmp_path, sim_universe, days=0)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None, what="engine started")
        assert app.day_seconds == 0
        await pilot.press("plus")
        assert app.day_seconds == 4.0  # from the fastest back to the slowest
        await pilot.press("plus")
        assert app.day_seconds == 2.0
        assert "2s/day" in str(app.query_one("#status").render())
        await pilot.pause(0.3)
        assert app.days_played == 0  # faster never plays a day past the limit
        cycles = app.engine.status().cycles_run
        await pilot.press("full_stop")
        await until(pilot, lambda: app.days_played == 1 and app.engine.status().cycles_run > cycles, what="one day")
        await pilot.pause(0.3)
        assert app.days_played == 1
        await pilot.press("q")


async def test_approve_promotes_the_pending_candidate_and_rollback_restores_the_champion(
        tmp_path: Path, sim_universe: Any) -> None:
    app = make_app(tmp_path, sim_universe, days=1, agent=True)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None and app.days_played >= 1, timeout=90, what="one day played")
        engine = app.engine
        market, loop = next(iter(agent_loops(engine).items()))
        champion = await loop.registry.champion_version()
        assert champion is not None
        await pilot.press("a")
        await until(pilot, lambda: notified(app, "no candidate is awaiting approval"), what="nothing to approve")

        # a candidate awaiting approval, made through the agent's public API: supervised autonomy and
        # one real experiment (a subprocess) that passes without a champion to beat
        await loop.set_autonomy("supervised")
        bars = await engine.store.bars.load(market, limit=engine.cycle_config.bars_for_features)
        inputs = await loop.prepare_inputs(bars)
        spec = ModelSpec.from_dict(loop.config.default_spec)
        hypothesis = Hypothesis("refit", {}, "none", "a candidate for the TUI's approval test")
        outcomes = await loop.run_experiments(bars.index[-1].date(), "tui-approve", None, spec, [hypothesis], inputs, None)
        assert [o.outcome for o in outcomes] == ["awaiting_approval"], outcomes
        candidate = outcomes[0].candidate_version
        assert loop.pending_approval and loop.pending_approval["version"] == candidate

        await until(pilot, lambda: app.view.agent.pending, what="pending shown in the agent pane")
        await pilot.press("a")
        await pick_market_if_asked(pilot, app, market)
        body = str(app.screen.query_one("#confirm-body").render())
        assert market in body and candidate in body and "refit" in body and "Gate:" in body and champion in body
        await pilot.click("#confirm")
        await until(pilot, lambda: notified(app, f"approved {candidate}"), what="approved")
        assert await loop.registry.champion_version() == candidate and loop.pending_approval is None
        await until(pilot, lambda: (m := app.view.agent.market(market)) is not None and m.champion == candidate,
                    what="new champion in the agent pane")

        await pilot.press("b")
        await pick_market_if_asked(pilot, app, market)
        body = str(app.screen.query_one("#confirm-body").render())
        assert candidate in body and champion in body
        await pilot.press("escape")  # cancel: nothing changes
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="cancelled")
        assert await loop.registry.champion_version() == candidate
        await pilot.press("b")
        await pick_market_if_asked(pilot, app, market)
        await pilot.click("#confirm")
        await until(pilot, lambda: notified(app, f"rolled back to {champion}"), what="rolled back")
        assert await loop.registry.champion_version() == champion
        await pilot.press("q")


async def test_flatten_key_asks_then_leaves_no_position(tmp_path: Path, sim_universe: Any) -> None:
    app = make_app(tmp_path, sim_universe, days=3)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None and app.days_played >= 3, timeout=90, what="three days")
        engine = app.engine

        async def held() -> dict[str, float]:
            return {p.local_symbol: p.quantity for p in await engine.broker.get_positions() if p.quantity}

        assert await held(), "the always-in champion should hold a position after three days"
        await pilot.press("p")  # no new orders while the flattening plays out
        await until(pilot, lambda: engine.status().paused, what="paused")
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="flatten confirmation")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="cancelled")
        assert await held()
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="flatten confirmation")
        await pilot.click("#confirm")
        await until(pilot, lambda: notified(app, "flatten:"), what="flatten started")
        for _ in range(3):  # the closing orders work in each market's next session
            played = app.days_played
            await pilot.press("full_stop")
            await until(pilot, lambda played=played: app.days_played > played, timeout=60, what="a day played")
            if not await held():
                break
        assert await held() == {}
        assert "flatten" in [e.command for e in await engine.store.ops.recent(50, kind="COMMAND")]
        await pilot.press("q")


async def test_palette_commands_act_on_the_engine(tmp_path: Path, sim_universe: Any) -> None:
    app = make_app(tmp_path, sim_universe, days=0)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.engine is not None, what="engine started")

        async def run(name: str) -> None:
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*name)
            await pilot.pause(0.3)
            await pilot.press("enter")

        await run("Pause / resume")
        await until(pilot, lambda: app.engine.status().paused, what="paused from the palette")
        await run("Step one day")
        await until(pilot, lambda: app.days_played == 1, what="a day from the palette")
        await run("Faster")
        await until(pilot, lambda: app.day_seconds == 4.0, what="faster from the palette")
        await pilot.press("q")


async def test_a_display_error_is_shown_and_the_engine_keeps_trading(tmp_path: Path, sim_universe: Any) -> None:
    class FaultyPane(HydraApp):
        """A pane that fails to gather twice (a widget bug), then recovers."""

        failures = 2

        async def gather(self, engine: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise ZeroDivisionError("pane bug")
            return await super().gather(engine)

    settings = load_settings(None, {"execution.long_threshold": 0.5, "execution.short_threshold": 0.5})
    app = FaultyPane(settings, data_dir=tmp_path, universe=sim_universe, agent=False, day_seconds=0, days=2)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: "display error: ZeroDivisionError" in str(app.query_one("#status").render()),
                    what="the error in the status line")
        await until(pilot, lambda: app.days_played >= 2 and app.view.cycles_run == 4, timeout=90,
                    what="days played and shown after the error")
        assert app.is_running and app.engine is not None
        await pilot.press("q")


async def test_a_refused_start_is_shown_without_a_traceback(tmp_path: Path, sim_universe: Any) -> None:
    store = tmp_path / "sim-DU1234567"
    store.mkdir()
    (store / "exchange.json").write_text("{ not json")
    app = make_app(tmp_path, sim_universe, days=0)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: "cannot start" in str(app.query_one("#status").render()), what="refusal shown")
        assert "Traceback" not in str(app.query_one("#status").render())
        assert app.engine is None and app.exit_code == 2
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="quit")
    assert app.return_code == 2


async def test_live_modal_cancel_opens_no_order_capable_session(tmp_path: Path, exchange: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("HYDRA_LIVE_CONFIRMED", "true")
    spy = SessionSpy(exchange)
    settings = load_settings(None, {"broker.kind": "ib", "broker.port": exchange.port, "broker.trading_mode": "live",
                                    "broker.client_id": 7})
    app = HydraApp(settings, data_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LiveConfirmScreen) and app.screen.focused is not None,
                    what="live modal mounted")
        body = str(app.screen.query_one("#live-body").render())
        assert "DU1234567" in body and str(exchange.port) in body  # read over the read-only probe
        assert app.screen.focused is not None and app.screen.focused.id == "cancel"
        await pilot.press("escape")
        await until(pilot, lambda: not app.is_running, what="exit")
    assert app.return_code == 2 and "no order-capable session" in app.exit_message
    assert 7 not in spy.client_ids and spy.client_ids == [107]  # only the read-only probe ever started a session
    assert exchange.open_orders() == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("ib-")]  # no store opened either


async def test_live_modal_confirm_proceeds_to_an_order_capable_session(tmp_path: Path, exchange: Any,
                                                                      monkeypatch: Any) -> None:
    monkeypatch.setenv("HYDRA_LIVE_CONFIRMED", "true")
    spy = SessionSpy(exchange)
    settings = load_settings(None, {"broker.kind": "ib", "broker.port": exchange.port, "broker.trading_mode": "live",
                                    "broker.client_id": 7})
    app = HydraApp(settings, data_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LiveConfirmScreen) and app.screen.focused is not None,
                    what="live modal mounted")
        assert spy.client_ids == [107]  # the read-only probe, nothing order-capable before the confirmation
        await click_into(pilot, "#live-input")
        await pilot.press(*"LIVE")
        await until(pilot, lambda: not app.screen.query_one("#confirm").disabled, what="Trade live enabled")
        await pilot.click("#confirm")
        await until(pilot, lambda: 7 in spy.client_ids, timeout=60, what="the engine's session")
        await until(pilot, lambda: app.engine is not None, timeout=60, what="engine started")
        assert app.engine.live_confirmed and "LIVE" in header(app)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=60, what="quit")
