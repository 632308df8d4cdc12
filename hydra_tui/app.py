"""HydraApp: the Textual terminal app that runs the engine on Textual's own loop.

The engine starts in a worker when the App mounts (after the live confirmation when a live port or
live mode asks for it) and is stopped before the App exits. On the embedded exchange the app plays
lock-step days a few real seconds apart (``+`` faster, ``.`` one day now); on an IB Gateway it runs
in real time. Panes read one ``View`` gathered at most twice a second; a pane error is reported in
the status line and never reaches the engine. Every operator action is an ``action_*`` method with
a binding, so the command palette and the help screen can list them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual import on
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static, Tab, Tabs

from hydra_tui.logging_setup import LogRing
from hydra_tui.screens.confirm import ConfirmScreen, PickMarketScreen
from hydra_tui.screens.live_modal import LiveConfirmScreen, needs_live_confirmation
from hydra_tui.widgets import view as views
from hydra_tui.widgets.account import AccountPane
from hydra_tui.widgets.agent import AgentPane
from hydra_tui.widgets.fills import FillsTable
from hydra_tui.widgets.header import HydraHeader
from hydra_tui.widgets.log_pane import LogPane
from hydra_tui.widgets.table_diff import update_if_changed
from hydra_tui.widgets.orders import OrdersTable
from hydra_tui.widgets.positions import PositionsTable

log = structlog.get_logger(__name__)

REFRESH_S = 0.5
"""Panes refresh at most at 2 Hz (STYLE.md: keyed diffs at 1-2 Hz)."""
AGENT_REFRESH_S = 5.0
"""The agent pane re-reads the registry and journal this often when no engine event says it changed..."""
AGENT_MIN_S = 1.0
"""...and at most this often when events do (lock-step days at full speed change it constantly)."""
SPEEDS = (4.0, 2.0, 1.0, 0.5, 0.25, 0.0)
"""Real seconds per simulated day that ``+`` steps through (then back to the slowest)."""


PANES = (("account-box", "Account"), ("positions-box", "Positions"), ("orders-box", "Orders"),
         ("agent-box", "Agent"), ("fills-box", "Fills"), ("log-box", "Log"))
"""(container id, title): the main screen's panes, in the order of their tabs and of keys 1-6."""


def _palette_commands() -> set[Any]:
    try:
        from hydra_tui.palette import HydraCommands
    except ImportError:
        return set()
    return {HydraCommands}


class HydraApp(App[int]):
    """``app.engine`` is the started Engine once mounted (None before and after)."""

    CSS_PATH = str(Path(__file__).with_name("hydra.tcss"))
    """Absolute, so a subclass defined elsewhere (a test, an embedding) finds it too."""
    TITLE = "HYDRA"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    COMMANDS = App.COMMANDS | _palette_commands()
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause"),
        Binding("c", "force_cycle", "Cycle"),
        Binding("r", "reconciliation", "Recon"),
        Binding("j", "journal", "Journal"),
        Binding("m", "model", "Model"),
        Binding("a", "approve", "Approve"),
        Binding("b", "rollback", "Rollback"),
        Binding("f", "flatten", "Flatten"),
        Binding("plus,equals_sign", "faster", "Faster", key_display="+"),
        Binding("full_stop", "step_day", "Step day", key_display="."),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        *(Binding(str(i), f"pane({i})", f"Show {title}", show=False) for i, (_, title) in enumerate(PANES, 1)),
    ]

    def __init__(self, settings: Any, *, data_dir: Any = None, seed: int | None = None, universe: Any = None,
                 agent: bool = True, new_exchange: bool = False, day_seconds: float | None = None,
                 days: int | None = None, log_ring: LogRing | None = None,
                 engine_factory: Callable[..., Any] | None = None,
                 needs_live: bool | None = None,
                 account_probe: Callable[[], Awaitable[str]] | None = None,
                 wall_now: Callable[[], dt.datetime] | None = None,
                 fixed_view: views.View | None = None) -> None:
        """``fixed_view``: show this View and start no engine (snapshot tests, the README's capture)."""
        super().__init__()
        self.settings = settings
        self._data_dir = data_dir
        self._seed = seed
        self._universe = universe
        self._agent = agent
        self._new_exchange = new_exchange
        self.day_seconds = settings.runner.lockstep_delay_s if day_seconds is None else float(day_seconds)
        self.days = days
        self.days_played = 0
        self.log_ring = log_ring
        self._engine_factory = engine_factory
        b = settings.broker
        self._needs_live = needs_live_confirmation(b.kind, b.port, b.trading_mode) if needs_live is None else needs_live
        self._account_probe = account_probe
        self._wall_now = wall_now or (lambda: dt.datetime.now(dt.timezone.utc))
        self.engine: Any = None
        self.exit_code = 0
        self.exit_message = ""
        """Printed on stderr after the App left the terminal (a refusal, a cancelled live start)."""
        self.message = ""
        self.pane_shown = PANES[0][0]
        """The pane shown in the narrow layout (tabs / keys 1-6)."""
        self._step = asyncio.Event()
        self._stopping = False
        self._hung_up = False
        self._refreshing = False
        self._fills: list[Any] = []
        self._fills_dirty = True
        self._equity: list[float] = []
        self._agent_view = views.AgentView()
        self._agent_read_at = -1e9
        self._agent_dirty = True
        self._breaker = ""
        self._sub: Any = None
        self.view = views.View(mode="LIVE" if b.trading_mode == "live" else ("SIM" if b.kind == "sim" else "PAPER"))
        self._fixed_view = fixed_view

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield HydraHeader(id="header")
        yield Tabs(*(Tab(title, id=f"tab-{box}") for box, title in PANES), id="pane-tabs")
        with Vertical(id="panes"):
            with Horizontal(id="top-row", classes="row"):
                with Vertical(id="account-box", classes="pane"):
                    yield AccountPane(id="account")
                with Vertical(id="positions-box", classes="pane"):
                    yield PositionsTable(id="positions")
                with Vertical(id="orders-box", classes="pane"):
                    yield OrdersTable(id="orders")
            with Vertical(id="agent-box", classes="pane"):
                yield AgentPane(id="agent")
            with Horizontal(id="bottom-row", classes="row"):
                with Vertical(id="fills-box", classes="pane"):
                    yield FillsTable(id="fills")
                with Vertical(id="log-box", classes="pane"):
                    yield LogPane(self.log_ring, id="log")
        with Horizontal(id="status-line"):
            yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        for box, title in PANES:
            self.query_one(f"#{box}").border_title = "Working orders" if box == "orders-box" else title
        self._show_pane("account-box")
        self._install_signals()
        if self._fixed_view is not None:
            self.view = self._fixed_view
            self._render_view()
            return
        self._render_view()
        if self._needs_live:
            self._confirm_live()
        else:
            self._run_engine(live_confirmed=False)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig.name)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def _on_signal(self, name: str) -> None:
        log.warning("tui.signal", signal=name)
        if name == "SIGHUP":
            self._hung_up = True
        self.run_worker(self.shutdown(), group="shutdown", exclusive=True, exit_on_error=False)

    def _show_pane(self, box: str) -> None:
        """Narrow layout: only ``box`` (and its row) is displayed; the wide layout ignores the classes."""
        self.pane_shown = box
        for other, _ in PANES:
            self.query_one(f"#{other}").set_class(other != box, "-tab-hidden")
        for row in self.query(".row"):
            row.set_class(not row.query(f"#{box}"), "-tab-hidden")

    @on(Tabs.TabActivated, "#pane-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab is not None and event.tab.id:
            self._show_pane(event.tab.id.removeprefix("tab-"))

    def action_pane(self, n: int) -> None:
        """Keys 1-6: show that pane (narrow) and focus its table."""
        box = PANES[max(1, min(len(PANES), int(n))) - 1][0]
        self.query_one("#pane-tabs", Tabs).active = f"tab-{box}"
        self._show_pane(box)
        focusable = [w for w in self.query_one(f"#{box}").query("*") if w.can_focus]
        if focusable:
            focusable[0].focus()

    # ----------------------------------------------------------------- live gate

    @work(group="live", exit_on_error=False)
    async def _confirm_live(self) -> None:
        """Refuse before asking when the environment does not allow live; otherwise ask the operator."""
        from hydra_engine.execution.runner import check_live_allowed

        try:
            check_live_allowed(self.settings.broker.trading_mode if self.settings.broker.trading_mode == "live"
                               else "live", True)
        except Exception as exc:  # noqa: BLE001 - shown, then exit 2 without a session
            self.exit_code = 2
            self._set_message(str(exc), error=True)
            self.exit_message = f"hydra-tui: {exc}"
            self.exit(2, return_code=2)
            return
        account = self.settings.broker.account
        if not account:
            try:
                account = await (self._account_probe or self._probe_account)()
            except Exception as exc:  # noqa: BLE001 - the modal says it could not be read
                account = f"unknown ({exc})"
        ok = await self.push_screen_wait(LiveConfirmScreen(account, self.settings.broker.port))
        if not ok:
            log.warning("tui.live_cancelled", port=self.settings.broker.port)
            self.exit_code = 2
            self.exit_message = "hydra-tui: live trading cancelled; no order-capable session was opened"
            self.exit(2, return_code=2)
            return
        self._run_engine(live_confirmed=True)

    async def _probe_account(self) -> str:
        from hydra_engine.broker.connection import probe_accounts

        b = self.settings.broker
        accounts = await probe_accounts(b.host, b.port, b.client_id + 100)
        return ", ".join(accounts) or "(none reported)"

    # ----------------------------------------------------------------- engine life cycle

    def make_engine(self, live_confirmed: bool) -> Any:
        if self._engine_factory is not None:
            return self._engine_factory(live_confirmed=live_confirmed)
        from hydra_engine.engine import Engine

        return Engine(self.settings, data_dir=self._data_dir, live_confirmed=live_confirmed, seed=self._seed,
                      universe=self._universe, agent=self._agent, new_exchange=self._new_exchange)

    @work(group="engine", exclusive=True, exit_on_error=False)
    async def _run_engine(self, live_confirmed: bool) -> None:
        from hydra_engine.engine_checks import is_refusal

        engine = self.make_engine(live_confirmed)
        self._sub = engine.bus.subscribe(maxsize=5000)
        self._set_message("starting the engine…")
        try:
            await engine.start()
        except Exception as exc:  # noqa: BLE001 - shown, never a traceback
            log.exception("tui.start_failed")
            self.exit_code = 2 if is_refusal(exc) else 1
            self.exit_message = f"hydra-tui: cannot start: {exc}"
            self._set_message(f"cannot start: {exc} (q quits)", error=True)
            self.notify(f"cannot start: {exc}", severity="error", timeout=30)
            await engine.stop()
            return
        self.engine = engine
        self._set_message("")
        self.set_interval(REFRESH_S, self._tick, name="refresh")
        self._tick()
        if engine.driver is not None:
            await self._play(engine)

    async def _play(self, engine: Any) -> None:
        """Lock-step: one simulated day at a time, ``day_seconds`` apart (``.`` plays one now)."""
        while not self._stopping and not engine.driver.stopping:
            while self.days is not None and self.days_played >= self.days and not self._stopping:
                self._set_message(f"{self.days_played} day(s) played; . plays one more")
                self._step.clear()
                await self._step.wait()  # woken by ., +, or the shutdown; only . raises the limit
            if self._stopping:
                break
            try:
                played = await engine.run_days(1)
            except Exception as exc:  # noqa: BLE001 - shown; the engine keeps its state
                log.exception("tui.day_failed")
                self._set_message(f"day failed: {type(exc).__name__}: {exc}", error=True)
                self._step.clear()
                await self._step.wait()
                continue
            if played.data_end is not None:  # nothing left to play: say so and wait
                self._set_message(f"the exchange's history ends on {played.data_end}: no more days to play")
                self._step.clear()
                await self._step.wait()
                continue
            self.days_played += 1
            if self.days is not None and self.days_played >= self.days:
                continue
            self._step.clear()
            if self.day_seconds > 0:
                try:
                    await asyncio.wait_for(self._step.wait(), self.day_seconds)
                except asyncio.TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)

    async def on_unmount(self) -> None:
        """However the App ends (quit, a test's teardown, an error), the engine it started is stopped
        before it goes: cycles finish, working orders are cancelled, the store is closed."""
        engine, self.engine = self.engine, None
        if engine is not None:
            self._stopping = True
            self._step.set()
            if engine.driver is not None:
                engine.driver.stop()
            await engine.stop()

    async def shutdown(self, code: int | None = None) -> None:
        """Stop the engine (cycles finish, working orders cancelled, state flushed), then exit."""
        if self._stopping:
            return
        self._stopping = True
        self._step.set()
        engine, self.engine = self.engine, None
        if engine is not None:
            self._set_message("stopping the engine…")
            if engine.driver is not None:
                engine.driver.stop()
            await engine.stop()
        if self._sub is not None:
            self._sub.close()
        if self._hung_up:
            # The terminal is gone: Textual's exit would wait forever on a writer thread that cannot
            # write to it (measured: the process hung after engine.stopped). The engine is stopped and
            # its state flushed; flush the log and leave now.
            log.warning("tui.hangup_exit", engine_stopped=engine is not None)
            import logging
            import os

            logging.shutdown()
            os._exit(0)
        rc = self.exit_code if code is None else code
        self.exit(rc, return_code=rc)

    # ----------------------------------------------------------------- refresh

    def _tick(self) -> None:
        if self._refreshing or self.engine is None:
            return
        self._refreshing = True
        self.run_worker(self._refresh(), group="refresh", exit_on_error=False)

    async def _refresh(self) -> None:
        try:
            engine = self.engine
            if engine is None:
                return
            self._drain_events()
            if self._fills_dirty:
                self._fills_dirty = False
                self._fills = await engine.fill_journal.fills(limit=200)
            self.view = await self.gather(engine)
            self._render_view()
        except Exception as exc:  # noqa: BLE001 - a pane error never stops the engine
            log.exception("tui.refresh_failed")
            self._set_message(f"display error: {type(exc).__name__}: {exc}", error=True)
        finally:
            self._refreshing = False

    def _drain_events(self) -> None:
        from hydra_engine import events as ev

        sub = self._sub
        if sub is None:
            return
        while (e := sub.get_nowait()) is not None:
            if isinstance(e, ev.FillRecorded):
                self._fills_dirty = True
            elif isinstance(e, ev.AccountUpdated):
                self._equity.append(float(e.net_liquidation))
                del self._equity[:-500]
            elif isinstance(e, (ev.ChampionChanged, ev.AgentPhaseChanged, ev.CycleFinished, ev.ExperimentUpdated,
                                ev.ApprovalRequested)):
                self._agent_dirty = True
            elif isinstance(e, ev.BreakerChanged):
                self._breaker = e.breaker if e.tripped else ""
            elif isinstance(e, ev.PauseChanged):
                self._set_message("paused" if e.paused else "resumed")
            elif isinstance(e, ev.ConnectionChanged) and not e.connected:
                self._set_message(f"broker {e.state}: {e.detail}", error=True)

    async def gather(self, engine: Any) -> views.View:
        """One read of the engine for every pane."""
        from hydra_engine.markets import next_decision_after

        st = engine.status()
        now = st.now
        clocks = []
        for m in engine.settings.markets:
            try:
                clocks.append(views.MarketClock(m.symbol, next_decision_after(m, now)))
            except Exception:  # noqa: BLE001
                clocks.append(views.MarketClock(m.symbol, None))
        equity = tuple(self._equity) if self._equity else ((st.net_liquidation,) if st.net_liquidation else ())
        mono = asyncio.get_running_loop().time()
        age = mono - self._agent_read_at
        if (self._agent_dirty and age >= AGENT_MIN_S) or age >= AGENT_REFRESH_S:
            self._agent_dirty, self._agent_read_at = False, mono
            self._agent_view = await views.agent_view(engine, self._wall_now())
        return views.View(
            mode=st.mode, connection=st.connection, connected=st.connected, last_message_age_s=st.last_message_age_s,
            trading_state=st.trading_state, breaker=views.tripped_breakers(engine) or self._breaker, paused=st.paused,
            agent_phase=st.agent_phase, now=now, clock_kind=views.clock_kind(engine), clocks=tuple(clocks),
            account=st.account, net_liquidation=st.net_liquidation, cash=st.cash,
            daily_pnl=st.daily_pnl, drawdown=st.drawdown, equity=equity,
            positions=views.positions(engine, now), orders=views.orders(engine, now),
            fills=views.fill_rows(self._fills[:100]), agent=self._agent_view,
            cycles_run=st.cycles_run, message=self.message,
        )

    def _render_view(self) -> None:
        v = self.view
        with self.batch_update():
            self.query_one(HydraHeader).show(v)
            self.query_one(AccountPane).show(v)
            self.query_one(PositionsTable).show(v)
            self.query_one(OrdersTable).show(v)
            self.query_one(AgentPane).show(v.agent)
            self.query_one(FillsTable).show(v)
            self.query_one(LogPane).pull()
            self._show_message()
            self.query_one("#positions-box").border_subtitle = f"{len(v.positions)}"
            self.query_one("#orders-box").border_subtitle = f"{len(v.orders)}"
            self.query_one("#fills-box").border_subtitle = f"{len(v.fills)}"
        self._update_pause_label(v.paused)

    def _update_pause_label(self, paused: bool) -> None:
        label = "Resume" if paused else "Pause"
        current = self._bindings.key_to_bindings.get("p")
        if current and current[0].description != label:
            self._bindings.key_to_bindings["p"] = [dataclasses.replace(b, description=label) for b in current]
            self.refresh_bindings()

    def _set_message(self, text: str, *, error: bool = False) -> None:
        self.message = text
        self._message_error = error
        if self._status_ready():
            self._show_message()

    def _status_ready(self) -> bool:
        try:
            self.query_one("#status", Static)
        except Exception:  # noqa: BLE001 - not composed yet
            return False
        return True

    def _show_message(self) -> None:
        speed = f"{self.day_seconds:g}s/day" if self.view.mode == "SIM" else "real time"
        text = f"{speed}  {self.message}"
        status = self.query_one("#status", Static)
        update_if_changed(status, text, layout=False)
        status.set_class(bool(getattr(self, "_message_error", False)), "-error")

    # ----------------------------------------------------------------- actions

    def _need_engine(self) -> Any:
        if self.engine is None:
            self.notify("the engine is not running yet", severity="warning")
        return self.engine

    async def _call(self, what: str, coro: Awaitable[Any]) -> Any:
        """Run an operator command; its error is shown, never raised into the App."""
        try:
            return await coro
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            log.warning("tui.command_failed", command=what, error=str(exc))
            self.notify(f"{what}: {exc}", severity="error", timeout=8)
            self._set_message(f"{what}: {exc}", error=True)
            return None

    @work(group="command", exit_on_error=False)
    async def action_toggle_pause(self) -> None:
        engine = self._need_engine()
        if engine is None:
            return
        if engine.status().paused:
            await self._call("resume", engine.resume())
            self.notify("resumed: new orders and experiments allowed")
        else:
            await self._call("pause", engine.pause("operator (TUI)"))
            self.notify("paused: no new orders or experiments; observation continues")
        self._update_pause_label(engine.status().paused)
        self._tick()

    @work(group="command", exit_on_error=False)
    async def action_force_cycle(self) -> None:
        engine = self._need_engine()
        if engine is None:
            return
        symbols = [m.symbol for m in engine.settings.markets]
        market: str | None = ""
        if len(symbols) > 1:
            market = await self.push_screen_wait(PickMarketScreen(symbols))
            if market is None:
                return
        result = await self._call("force cycle", engine.force_cycle(market or None))
        if result is not None:
            self.notify(f"force cycle {market or 'all markets'}: {_cycle_outcome(result)}")
        self._tick()

    async def _pick(self, title: str, symbols: list[str]) -> str | None:
        """One market: the only one, or the operator's pick (None: cancelled)."""
        if len(symbols) == 1:
            return symbols[0]
        return await self.push_screen_wait(PickMarketScreen(symbols, title=title, allow_all=False))

    @work(group="command", exit_on_error=False)
    async def action_approve(self) -> None:
        """Approve the pending promotion, after a modal that says what is approved."""
        engine = self._need_engine()
        if engine is None:
            return
        agent = await views.agent_view(engine, self._wall_now())
        pending = {p.market: p for p in agent.pending}
        if not pending:
            self.notify("no candidate is awaiting approval", severity="warning")
            return
        market = await self._pick("Approve which market's candidate?", sorted(pending))
        if market is None:
            return
        p = pending[market]
        shown = agent.market(market)
        current = (shown.champion if shown is not None else None) or p.previous
        ok = await self.push_screen_wait(ConfirmScreen(
            f"Approve {p.version} for {p.market}?",
            f"Market {p.market}: candidate {p.version} from hypothesis {p.hypothesis or '-'} "
            f"(experiment of {p.trading_date or '-'}) replaces the champion {current or '(none)'}.\n"
            f"Gate: {p.gate}\nIt trades from the market's next signal.", "Approve"))
        if not ok:
            return
        version = await self._call("approve", engine.approve(market=market))
        if version:
            self.notify(f"approved {version} for {market} ({p.hypothesis}): it trades from the next signal")
        self._agent_dirty = True
        self._tick()

    @work(group="command", exit_on_error=False)
    async def action_rollback(self) -> None:
        engine = self._need_engine()
        if engine is None:
            return
        loops = views.agent_loops(engine)
        if not loops:
            self.notify("roll back: the engine has no agent (registry) to roll back", severity="warning")
            return
        market = await self._pick("Roll back which market's champion?", list(loops))
        if market is None:
            return
        current, previous = views.champions(engine).get(market) or "the champion", None
        try:
            rec = await loops[market].registry.champion_record()
            if rec is not None:
                current, previous = rec.version, rec.previous_champion
        except Exception:  # noqa: BLE001 - the modal says less
            pass
        ok = await self.push_screen_wait(ConfirmScreen(
            f"Roll back {market}'s champion?",
            f"{market}: {current} is replaced by the previous champion ({previous or 'unknown'}); "
            "the rollback starts the agent's cooldown.", "Roll back"))
        if not ok:
            return
        reason = "operator rollback (TUI)"
        restored = await self._call("rollback", engine.rollback(reason, market=market))
        if restored:
            self.notify(f"{market}: rolled back to {restored}")
        self._agent_dirty = True
        self._tick()

    @work(group="command", exit_on_error=False)
    async def action_flatten(self) -> None:
        engine = self._need_engine()
        if engine is None:
            return
        held = engine.status().positions
        ok = await self.push_screen_wait(ConfirmScreen(
            "Flatten everything?", f"Cancel every working order and close {len(held)} position(s) through the risk "
            "gate, each from its next session's open. Consider pausing first.", "Flatten"))
        if not ok:
            return
        tasks = await self._call("flatten", engine.flatten())
        if tasks is not None:
            self.notify(f"flatten: {len(tasks)} closing order(s) under way")
        self._tick()

    def action_faster(self) -> None:
        later = [s for s in SPEEDS if s < self.day_seconds]
        self.day_seconds = later[0] if later else SPEEDS[0]
        self._step.set()
        self.notify(f"{self.day_seconds:g} s per simulated day")
        self._show_message()

    def action_step_day(self) -> None:
        if self.engine is None or self.engine.driver is None:
            self.notify("step one day: only on the embedded exchange (lock-step)", severity="warning")
            return
        self.days = None if self.days is None else max(self.days, self.days_played + 1)
        self._step.set()

    def _push_named(self, module: str, cls: str, *args: Any) -> None:
        try:
            mod = importlib.import_module(f"hydra_tui.screens.{module}")
            screen = getattr(mod, cls)(*args)
        except (ImportError, AttributeError):
            self.notify(f"the {module} screen is not built yet", severity="warning")
            return
        self.push_screen(screen)

    def action_reconciliation(self) -> None:
        if self._need_engine() is not None:
            self._push_named("reconciliation", "ReconciliationScreen", self.engine)

    def action_journal(self) -> None:
        if self._need_engine() is not None:
            self._push_named("journal", "JournalScreen", self.engine)

    def action_model(self) -> None:
        if self._need_engine() is not None:
            self._push_named("model", "ModelScreen", self.engine)

    def action_help(self) -> None:
        self._push_named("help", "HelpScreen", self.binding_list())

    def binding_list(self) -> list[tuple[str, str]]:
        """(key, description) of every app binding, for the help screen."""
        from hydra_tui.palette import COMMANDS

        texts = {action: f"{name}: {text}" for name, action, text in COMMANDS}
        out = [(b.key_display or b.key, texts.get(b.action, b.description)) for b in self.BINDINGS
               if isinstance(b, Binding) and not b.key.isdigit()]
        panes = ", ".join(f"{i} {title}" for i, (_, title) in enumerate(PANES, 1))
        return out + [("1-6", f"Show / focus a pane: {panes}"), ("ctrl+p", "Command palette"), ("ctrl+q", "Quit")]

    async def action_quit(self) -> None:
        """``q``: stop the engine and exit, after asking when orders are working."""
        self._quit_flow()

    @work(group="quit", exclusive=True, exit_on_error=False)
    async def _quit_flow(self) -> None:
        engine = self.engine
        st = engine.status() if engine is not None else None
        working = st.working_orders if st is not None else ()
        scheduled = st.scheduled_orders if st is not None else ()
        if working or scheduled:
            parts = []
            if working:
                parts.append(f"{len(working)} working order(s): " + "; ".join(working[:3]))
            if scheduled:
                parts.append(f"{len(scheduled)} order(s) waiting for their session: " + "; ".join(scheduled[:3]))
            ok = await self.push_screen_wait(ConfirmScreen(
                "Quit with orders under way?",
                ". ".join(parts) + ". Quitting cancels them (the next start works a decision that still stands).",
                "Quit"))
            if not ok:
                return
        await self.shutdown()


def _cycle_outcome(result: Any) -> str:
    """``FINISHED`` for one market, ``CL FINISHED, ZO DUPLICATE`` for several."""
    if isinstance(result, dict):
        if "status" in result:
            return str(result["status"])
        cycles = result.get("cycles")
        if isinstance(cycles, list):
            return ", ".join(f"{c.get('market')} {c.get('status')}" for c in cycles if isinstance(c, dict))
    return str(result)


async def run_app(app: HydraApp) -> int:
    """Run the App on this loop; the engine is stopped whatever way the App ended."""
    try:
        code = await app.run_async()
    finally:
        if app.engine is not None:
            engine, app.engine = app.engine, None
            await engine.stop()
    return int(code if code is not None else app.exit_code)


def run_tui(args: Any) -> int:
    """``hydra-tui`` without ``--no-ui``: settings and logging first (never to the terminal), then
    the App on one asyncio loop. Exit code as headless: 0 clean, 1 failure, 2 refused."""
    import sys

    from hydra_engine.config import ConfigError
    from hydra_engine.paths import DataDirError, check_data_dir
    from hydra_tui import logging_setup
    from hydra_tui.headless import log_file_for, settings_from_args

    try:
        settings = settings_from_args(args)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"hydra-tui: {exc}\n")
        return 2
    days = getattr(args, "days", None)
    day_seconds = getattr(args, "day_seconds", None)
    if days is not None and days < 0:
        sys.stderr.write(f"hydra-tui: --days {days}: must be 0 or more\n")
        return 2
    if day_seconds is not None and not 0 <= day_seconds <= 3600:
        sys.stderr.write(f"hydra-tui: --day-seconds {day_seconds}: must be between 0 and 3600\n")
        return 2
    data_dir = settings.data_dir(getattr(args, "data_dir", None))
    try:
        check_data_dir(data_dir)
        logs = logging_setup.configure(settings.logging.level, log_file_for(settings, data_dir))
    except DataDirError as exc:
        sys.stderr.write(f"hydra-tui: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"hydra-tui: cannot open the log file {exc.filename}: {exc.strerror or exc}\n")
        return 2
    app = HydraApp(settings, data_dir=data_dir, seed=getattr(args, "seed", None),
                   new_exchange=bool(getattr(args, "new_exchange", False)), day_seconds=day_seconds, days=days,
                   log_ring=logs.ring)
    try:
        code = asyncio.run(run_app(app))
    except KeyboardInterrupt:
        code = 0
    finally:
        logs.close()
    if app.exit_message:
        sys.stderr.write(app.exit_message + "\n")
    return code
