"""Engine: the composition root. Builds every part from the settings and owns their life cycle.

One Engine per process and per store (broker + account). For broker "sim" it starts the embedded
exchange on loopback with its state file in the store directory (a restart resumes the same
simulated account) and, by default, a lock-step clock that ``run_days`` steps; for broker "ib" it
talks to an IB Gateway in real time with APScheduler firing the decisions. The engine is the same
either way (one kernel, swappable edges). It never imports Textual or ``hydra_tui``. The time
source lives in ``engine_time``, the settings-to-parts helpers and the bootstrap fit in
``engine_setup``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import structlog

from hydra_engine.clock import WallClock
from hydra_engine.config import HydraSettings, SimSettings
from hydra_engine.engine_checks import (
    StartRefused,
    check_exchange_clock,
    check_state_file_present,
    mark_exchange,
    set_state_file_aside,
)
from hydra_engine.engine_setup import agent_config
from hydra_engine.engine_time import (
    BROKER_TIME_PROBE_S,
    BROKER_TIME_SKEW_S,
    SwitchableClock,
    follow_broker_time,
)
from hydra_engine.events import AgentPhaseChanged, BreakerChanged, ChampionChanged, EventBus
from hydra_engine.execution.cycle import CONTINUOUS, CycleConfig
from hydra_engine.execution.runner import PaperTradingRunner, check_live_allowed
from hydra_engine.markets import any_market_trades, local_date
from hydra_engine.paths import store_dir
from hydra_engine.store.ops_journal import OpsKind

if TYPE_CHECKING:
    from hydra_engine.execution.lockstep import LockstepReport

log = structlog.get_logger(__name__)

SIM_DEFAULT_ACCOUNT = "DU1234567"
START_RETRIES = 6
"""Tries of the first connection (and its reconciliation) to an IB Gateway before start-up fails."""
START_RETRY_MAX_S = 30.0
EXCHANGE_STATE_FILE = "exchange.json"


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """A snapshot for the TUI header and ``hydra-tui status``. Money in account currency."""

    mode: str
    """SIM, PAPER or LIVE."""
    connection: str
    connected: bool
    last_message_age_s: float | None
    trading_state: str
    """ACTIVE, REDUCING or HALTED (the risk gate's view)."""
    paused: bool
    agent_phase: str
    champion: str | None
    """The first market's champion (``champions`` has every market's)."""
    next_decision_market: str | None
    next_decision_at: dt.datetime | None
    now: dt.datetime
    account: str
    net_liquidation: float | None
    cash: float | None
    daily_pnl: float | None
    peak_equity: float | None
    drawdown: float | None
    positions: Mapping[str, float] = field(default_factory=dict)
    working_orders: tuple[str, ...] = ()
    cycles_run: int = 0
    store_dir: str = ""
    gross_exposure: float | None = None
    """Account-wide gross notional at the last cycle's account step (all markets), for the gate's limit."""
    max_gross_exposure: float | None = None
    size_fraction: float = 1.0
    """Share of every size cap in force (below 1 while re-entering after a drawdown)."""
    champions: Mapping[str, str | None] = field(default_factory=dict)
    """Market -> the version of the champion it trades (its own, or its group's)."""
    derisked: Mapping[str, float] = field(default_factory=dict)
    """Markets whose champion is de-risked -> the share of size the agent allows."""
    scheduled_orders: tuple[str, ...] = ()
    """Decided orders waiting for their session's open (a stop cancels them; the next start resumes)."""


class Engine:
    """``await Engine(settings).start()``, then ``run_days`` (lock-step sim) or let the scheduler run."""

    def __init__(self, settings: HydraSettings, *, data_dir: str | Path | None = None, live_confirmed: bool = False,
                 lockstep: bool | None = None, universe: Any = None, seed: int | None = None,
                 agent: bool = True, new_exchange: bool = False) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir(data_dir)
        self.live_confirmed = live_confirmed
        self.kind = settings.broker.kind
        self.lockstep = (self.kind == "sim") if lockstep is None else bool(lockstep and self.kind == "sim")
        self.seed = 7 if seed is None else int(seed)
        self.agent_enabled = agent
        """False (or ``[agent] enabled = false``): no self-healing loop; the champion still trades."""
        self._universe = universe
        self.new_exchange = new_exchange
        """True (``--new-exchange``): a new simulated account on purpose beside an existing store."""
        self._exchange_checked = False
        self.bus = EventBus()
        self.cycle_config = CycleConfig.from_mapping(settings.sections.get("execution"))
        self.exchange: Any = None
        self.store: Any = None
        self.broker: Any = None
        self.risk_gate: Any = None
        self.fill_journal: Any = None
        self.reconciler: Any = None
        self.order_manager: Any = None
        self.registry: Any = None
        self.champion: Any = None
        self.agent: Any = None
        self.executor: Any = None
        self.runner: PaperTradingRunner | None = None
        self.driver: Any = None
        self.clock: Any = None
        self.account = settings.broker.account
        self._started = False
        self._stopped = False
        self.corrections: Any = None
        """``CorrectionJournal``: IB's corrected executions, journalled (alarm when one changes a fill)."""
        self.model_keys: Any = None
        """``ModelKeys``: which champion each market trades (its own, or its group's)."""
        self._champions: dict[str, str | None] = {}
        """Market -> champion version, as of the last bootstrap, promotion or rollback seen here."""
        self.broker_time = False
        """True when the engine follows the broker's clock (an external simulator at another time/speed)."""
        self._prober: asyncio.Task[Any] | None = None
        self.inbox: Any = None
        """The operator-request poller (``operator_requests``): commands from other processes."""
        self.operations: Any = None
        """``operations.service.Operations``: alerts, heartbeat, retention, memory guard."""
        self._stale_lock: Any = None

    @property
    def mode(self) -> str:
        if self.kind == "sim":
            return "SIM"
        return "LIVE" if self.settings.broker.trading_mode == "live" else "PAPER"

    @property
    def store_path(self) -> Path:
        return store_dir(self.data_dir, self.kind, self.account)

    # ----------------------------------------------------------------- start / stop

    async def start(self) -> None:
        """Build and connect everything; bootstrap a champion if the registry has none."""
        if self._started:
            return
        check_live_allowed(self.settings.broker.trading_mode, self.live_confirmed)
        self._started = True
        try:
            await self._build()
        except BaseException:
            await self.stop()
            raise

    async def _build(self) -> None:
        from hydra_engine.broker.gateway import BrokerGateway
        from hydra_engine.store.database import Store

        b = self.settings.broker
        self.clock = SwitchableClock(WallClock())
        store_args = dict(clock=self.clock, backups_kept=self.settings.store.backups_kept)
        if self.kind == "sim":
            # the store's single-instance lock first: a refused second engine must never start (and
            # then save over) the exchange state file of the running one
            self.account = b.account or SIM_DEFAULT_ACCOUNT
            self.store = await self._open_store(Store, store_args)
            await self._start_exchange()
            self.clock.use(self.exchange.clock)
            port = self.exchange.port
        else:
            port = b.port
        self.broker = BrokerGateway(
            port=port, client_id=b.client_id, host=b.host, account=self.account or None, trading_mode=b.trading_mode,
            live_confirmed=self.live_confirmed, embedded=self.kind == "sim", market_data_type=b.market_data_type,
            connect_timeout_s=b.connect_timeout_s, clock=self.clock, events=self.bus,
        )
        if self.kind != "sim":  # the account names the store: learn it from the first connection
            await self._with_start_retries("connect", self.broker.connect)
            self.account = self.broker.account
            await self._with_start_retries("broker time", self._choose_time_source)
            self.store = await self._open_store(Store, store_args)
        await self._check_client_id(b.client_id)
        await self._build_parts()
        if self.kind == "sim":
            await self.broker.connect()
        else:  # now with the order manager's rebind hooks and position book
            await self._with_start_retries("resync", self.broker.resync)
        await self.agent.start()  # adopts a single-champion store's rows first
        await self._bootstrap_champions()
        self._champions = await self.champion.versions()
        from hydra_engine.operations.service import Operations

        self.operations = Operations(self)  # before the runner starts: no cycle event is missed
        await self.operations.start()
        if self._stale_lock is not None:
            self.operations.stale_lock_found(self._stale_lock)
        await self._r().start(schedule=not self.lockstep, broker_time=self.broker_time)
        if self.lockstep:
            from hydra_engine.execution.lockstep import LockstepDriver

            self.driver = LockstepDriver(self.exchange, self.runner, self.broker)
        from hydra_engine.operator_requests import OperatorInbox

        self.inbox = OperatorInbox(self)
        self.inbox.start()
        await self.store.ops.record(OpsKind.NOTE, f"engine started ({self.mode}, port {port})", actor="engine",
                                    detail={"mode": self.mode, "port": port, "lockstep": self.lockstep})
        log.info("engine.started", mode=self.mode, account=self.account, store=str(self.store.directory),
                 lockstep=self.lockstep, port=port)

    async def _open_store(self, store_cls: Any, store_args: dict[str, Any]) -> Any:
        """Open the account's store, first noting a lock a killed engine left (opening rewrites it)."""
        from hydra_engine.operations.stale_lock import find_stale_lock
        from hydra_engine.paths import LOCK_FILE_NAME

        self._stale_lock = await asyncio.to_thread(find_stale_lock, self.store_path / LOCK_FILE_NAME)
        return await store_cls.open(self.data_dir, self.kind, self.account, **store_args)

    async def _with_start_retries(self, what: str, step: Any) -> Any:
        """A gateway that drops or restarts while the engine starts (its nightly restart, a network
        blip) is waited for with backoff, as the running engine waits for a reconnection; a refusal
        (wrong account, client id in use, live not allowed) is not retried."""
        from hydra_engine.broker.errors import NotConnected, StateUnknown

        for attempt in range(1, START_RETRIES + 1):
            try:
                return await step()
            except (NotConnected, StateUnknown, ConnectionError, TimeoutError) as exc:
                if attempt == START_RETRIES:
                    raise
                wait = min(START_RETRY_MAX_S, 2.0 ** attempt)
                log.warning("engine.start_retry", step=what, attempt=attempt, wait_s=wait, error=str(exc))
                await asyncio.sleep(wait)
        return None

    async def _check_client_id(self, client_id: int) -> None:
        """The API client id is fixed per store; a change is allowed but journalled."""
        from hydra_engine.store.kv import CLIENT_ID

        stored = await self.store.kv.get(CLIENT_ID)
        if stored != client_id:
            if stored is not None:
                log.warning("engine.client_id_changed", stored=stored, configured=client_id)
                await self.store.ops.record(OpsKind.NOTE, f"API client id changed {stored} -> {client_id}",
                                            actor="engine", detail={"old": stored, "new": client_id})
            await self.store.kv.set(CLIENT_ID, client_id)

    async def _choose_time_source(self) -> None:
        """Follow the broker's clock when it is far from wall time (see ``engine_time``)."""
        self._prober = await follow_broker_time(self.broker, self.clock)
        self.broker_time = self._prober is not None

    async def _start_exchange(self) -> None:
        from hydra_engine.sim import EmbeddedExchange

        from hydra_engine.sim import StateFileError

        directory = self.store_path
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        state_path = directory / EXCHANGE_STATE_FILE
        if self.new_exchange:
            kept = set_state_file_aside(state_path, dt.datetime.now(dt.timezone.utc))
            await self.store.ops.record(OpsKind.NOTE, "new simulated account on purpose (--new-exchange)",
                                        actor="engine", detail={"old_state_kept_as": str(kept) if kept else None})
        else:
            await check_state_file_present(self.store, state_path)
        sim = self.settings.section("sim", SimSettings)
        seed = self.seed if sim.seed is None else sim.seed
        universe = self._universe if self._universe is not None else await self._universe_for_markets(seed)
        try:
            self.exchange = await EmbeddedExchange.start(
                port=self.settings.broker.port, seed=seed,
                universe=universe, faults=sim.faults, state_path=state_path, accounts=(self.account,),
                starting_cash=sim.starting_cash, pacing=not self.lockstep,
            )
        except StateFileError as exc:
            raise StartRefused(f"{exc}. The store {self.store.path} was left as it was; restore exchange.json "
                               "or start a new simulated account on purpose with --new-exchange") from None
        try:
            await check_exchange_clock(self.store, self.exchange, state_path)
        except StartRefused:
            self.exchange.state_path = None  # leave the file as found: stopping must not save over it
            raise
        await self._save_and_mark_exchange()
        self._exchange_checked = True

    async def _universe_for_markets(self, seed: int) -> Any:
        """The exchange's default universe (None: it builds it) unless a configured market needs more:
        a CSV history (``[markets.NAME] history``, ``--market NAME=path.csv``) or a catalogue product
        the default universe does not list. A bad file is refused (exit 2) with the loader's file,
        line and column."""
        from hydra_engine.sim.history import HistoryFormatError
        from hydra_engine.sim.universe import DEFAULT_SYMBOLS, build_universe

        csv = {m.symbol: m.history for m in self.settings.markets if m.history}
        extra = [m.symbol for m in self.settings.markets if m.symbol not in DEFAULT_SYMBOLS and not m.history]
        if not csv and not extra:
            return None
        try:
            return await asyncio.to_thread(build_universe, seed, symbols=[*DEFAULT_SYMBOLS, *extra], csv_paths=csv)
        except HistoryFormatError as exc:
            raise StartRefused(f"market history {exc}") from None
        except ValueError as exc:
            raise StartRefused(f"markets: {exc}") from None

    async def _save_and_mark_exchange(self) -> None:
        """Save the exchange's state, then record in the store the clock read before that save, so the
        mark is never ahead of the file, even when a kill lands between the two."""
        at = self.exchange.clock.now()
        await self.exchange.save_state()
        await mark_exchange(self.store, self.exchange, at)
        if self.lockstep:
            log.info("engine.sim_pacing_off", reason="lock-step clock: historical-data pacing windows never elapse")

    async def _build_parts(self) -> None:
        from hydra_engine.agent.experiments import SubprocessExecutor, reap_stray_workers
        from hydra_engine.agent.per_market import MarketAgents, ModelKeys
        from hydra_engine.execution.corrections import CorrectionJournal
        from hydra_engine.execution.fill_journal import FillJournal
        from hydra_engine.execution.order_manager import OrderManager
        from hydra_engine.execution.reconciler import SlippageReconciler
        from hydra_engine.model.champion import MarketChampions
        from hydra_engine.model.registry import ModelRegistry
        from hydra_engine.operations.service import gateway_window
        from hydra_engine.risk.gate import RiskConfig, RiskGate

        s, store, clock = self.settings, self.store, self.clock
        primary = s.markets[0]
        # every writer on the shared connection goes through the store's write gate (store.tx), so
        # no commit lands inside another writer's open transaction
        self.fill_journal = FillJournal(store.conn, tx=store.tx)  # the order manager publishes FillRecorded
        self.reconciler = SlippageReconciler(store.conn)
        self.risk_gate = await RiskGate.open(store.conn, s.section("risk", RiskConfig), tx=store.tx,
                                             on_transition=self._breaker_changed,
                                             today=lambda: local_date(primary, clock.now()),
                                             is_trading_day=any_market_trades(s.markets),
                                             k_sigma=self.cycle_config.k_sigma)
        self.order_manager = OrderManager(
            self.broker, self.risk_gate, store, self.fill_journal, clock, patience=self.cycle_config.patience(),
            max_adv_fraction=max(m.max_adv_fraction for m in s.markets) or 0.01, events=self.bus,
        )
        self.corrections = CorrectionJournal(store)  # IB's new execId for a fill: never a second fill
        self.broker.subscribe_corrections(self.corrections.on_correction)
        self.registry = ModelRegistry(store.conn, store.directory / "models", clock, write_gate=store.tx)
        traded = [m for m in s.markets if m.enabled]
        self.model_keys = ModelKeys.from_groups([m.symbol for m in traded], {m.symbol: m.model_group for m in traded})
        self.champion = MarketChampions(self.registry, self.model_keys.key_of)
        agent_raw = dict(s.sections.get("agent", {}))
        self.agent_enabled = self.agent_enabled and bool(agent_raw.pop("enabled", True))
        # real time: experiments never hold up the day's signal; lock-step: the clock waits for them,
        # so a replay is the same for a seed whatever the machine's speed
        agent_raw.setdefault("experiment_wait_s", None if self.lockstep else 0.0)
        agent_cfg = agent_config(agent_raw)
        await asyncio.to_thread(reap_stray_workers, store.directory / "experiments")  # a crash's leftovers
        if self.agent_enabled and agent_cfg.executor == "dask":  # a cluster (optional extra), checked now: exit 2
            from hydra_engine.agent.dask_executor import DaskExecutor, ExecutorUnavailable

            try:
                self.executor = await DaskExecutor.connect(agent_cfg.scheduler)
            except ExecutorUnavailable as exc:
                raise StartRefused(str(exc)) from None
        else:
            self.executor = SubprocessExecutor(max_parallel=1, lease_dir=store.directory / "experiments")
        self.agent = MarketAgents(store.conn, self.registry, self.executor, store.directory / "experiments",
                                  agent_cfg, self.model_keys, on_phase=self._agent_phase, write_gate=store.tx)
        if not self.agent_enabled:
            log.warning("engine.agent_disabled", reason="agent.enabled = false: no self-healing, the champion trades")
        self.runner = PaperTradingRunner(
            self.broker, self.risk_gate, self.order_manager, self.fill_journal,
            self.agent if self.agent_enabled else None, self.champion,
            self.reconciler, s.runner, store=store, markets=s.markets, clock=clock, bus=self.bus,
            cycle_config=self.cycle_config, live_confirmed=self.live_confirmed, restart_window=gateway_window(s),
        )

    async def stop(self) -> None:
        """Stop cleanly: cycles finish (bounded), working orders are cancelled, state is flushed."""
        if self._stopped:
            return
        self._stopped = True
        if self.driver is not None:
            self.driver.stop()
        steps: list[tuple[str, Any]] = []
        if self.inbox is not None:  # no new operator requests once stopping; the last snapshot says so
            await _quietly("inbox", self.inbox.stop())
        if self.operations is not None:  # first: a clean stop raises no alert; the heartbeat says "stopped"
            await _quietly("operations", self.operations.stop())
        if self._prober is not None:
            self._prober.cancel()
        if self.runner is not None:
            steps.append(("runner", self.runner.stop()))
        for name, coro in steps:
            await _quietly(name, coro)
        if self.order_manager is not None:
            await _quietly("order_manager", self.order_manager.close())
        if self.corrections is not None:
            await _quietly("corrections", self.corrections.drain())
        if self.agent is not None:  # background experiments are abandoned (journalled as such on the next start)
            await _quietly("agent", self.agent.stop())
        if self.executor is not None:
            await _quietly("executor", self.executor.shutdown())
        if self.broker is not None:
            await _quietly("broker", self.broker.disconnect())
        if self.risk_gate is not None:
            await _quietly("risk_gate", self.risk_gate.close())
        if self.fill_journal is not None and hasattr(self.fill_journal, "aclose"):
            await _quietly("fill_journal", self.fill_journal.aclose())
        if self.store is not None and not self.store.closed:
            if self._exchange_checked and self.exchange is not None:  # its stop saves this clock or a later one
                await _quietly("exchange_mark", self._save_and_mark_exchange())
            try:
                await self.store.ops.record(OpsKind.NOTE, "engine stopped", actor="engine")
            except Exception:  # noqa: BLE001
                pass
            await _quietly("store", self.store.close())
        if self.exchange is not None:
            await _quietly("exchange", self.exchange.stop())
        self.bus.close()
        log.info("engine.stopped", mode=self.mode)

    async def __aenter__(self) -> "Engine":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- champion bootstrap

    async def _bootstrap_champions(self) -> None:
        """Every model key without a champion gets one: the default spec fitted (in a thread) on its
        lead market's history with a held-out recent segment, whose out-of-sample statistics are the
        detectors' and the performance monitor's reference (``model.bootstrap``)."""
        for key, agent in self.agent.markets.items():
            if await agent.registry.champion_version() is None:
                await self._bootstrap_champion(key, agent)

    async def _bootstrap_champion(self, key: str, agent: Any) -> None:
        from hydra_engine.execution.bar_history import refresh_continuous
        from hydra_engine.model.bootstrap import fit_with_holdout

        m = self.settings.market(self.model_keys.lead_of[key])
        try:
            await refresh_continuous(self.broker, self.store.bars, m, self.cycle_config.history_days)
            frame = await self.store.bars.load(m.symbol, CONTINUOUS, limit=self.cycle_config.bars_for_features)
            spec = dict(agent.config.default_spec)
            model, metrics = await asyncio.to_thread(fit_with_holdout, frame, spec, cost_bps=agent.config.cost_bps)
        except Exception as exc:  # noqa: BLE001 - no champion: no signal for this market until one exists
            log.exception("engine.bootstrap_failed", market=key)
            await self.store.ops.record(OpsKind.NOTE, f"champion bootstrap failed for {key}: {exc}", actor="engine")
            return
        version = await agent.registry.register(model, metrics, mutation="bootstrap", status="champion")
        hold = metrics.get("holdout") or {}
        held = (f", held out {hold['n']} days {hold['start']}..{hold['end']} as its reference" if hold else
                ", no held-out reference (too little history): the monitors warm up on live days")
        await self.store.ops.record(OpsKind.NOTE, f"bootstrap champion {version} for {key} fitted on {metrics['n_train']} "
                                    f"{m.symbol} days{held}", actor="engine", detail={"version": version, "market": key, **metrics})
        self.bus.publish(ChampionChanged(at=self.clock.now(), version=version, reason=f"bootstrap ({key})"))
        log.info("engine.champion_bootstrapped", market=key, version=version, n_train=metrics["n_train"],
                 train_end=metrics.get("train_end"), holdout=hold or None,
                 in_sample_log_loss=metrics.get("in_sample_log_loss"))

    # ----------------------------------------------------------------- operator commands

    async def pause(self, reason: str = "operator") -> None:
        await self._r().pause(reason)

    async def resume(self) -> None:
        await self._r().resume()

    async def force_cycle(self, market: str | None = None) -> dict[str, Any]:
        """Run today's cycle now (once per market and date: a repeat is a no-op)."""
        await self.store.ops.command("force-cycle", f"force cycle {market or 'all markets'}")
        return await self._r().run_daily_cycle(market, force=True, trigger="force")

    async def approve(self, market: str | None = None) -> str:
        """Promote the candidate awaiting approval in ``market`` (or the only one waiting)."""
        key, version = await self.agent.approve(market)
        await self.store.ops.command("approve", f"approved candidate {version} for {key}")
        self._champions.update({m: version for m, k in self.model_keys.key_of.items() if k == key})
        self.bus.publish(ChampionChanged(at=self.clock.now(), version=version, reason=f"approved by operator ({key})"))
        return version

    async def rollback(self, reason: str, market: str | None = None) -> str:
        """Put back ``market``'s previous champion (the market must be named when several trade)."""
        if not reason or not reason.strip():
            raise ValueError("rollback needs a reason")
        where = self.settings.market(market) if market is not None and market in self.model_keys.key_of else self.settings.markets[0]
        day = local_date(where, self.clock.now())
        key, restored, previous = await self.agent.rollback(reason, market, trading_date=day)
        await self.store.ops.command("rollback", f"rolled back {key}: {previous} -> {restored}: {reason}")
        self._champions.update({m: restored for m, k in self.model_keys.key_of.items() if k == key})
        self.bus.publish(ChampionChanged(at=self.clock.now(), version=restored, previous=previous or "",
                                         reason=f"{reason} ({key})"))
        return restored

    async def flatten(self) -> list[asyncio.Task[Any]]:
        """Cancel every working order and close every position through the risk gate (each market
        from its next trading session's open). Journalled; returns the closing tasks."""
        await self.store.ops.command("flatten", "flatten: cancel working orders, close positions through the gate")
        return await self._r().flatten()

    async def reset_peak(self, new_peak: float | None = None, reason: str = "operator reset") -> float:
        """Set the persisted equity peak (default: current net liquidation), journalled."""
        if new_peak is None:
            snap = await self.broker.get_account_summary()
            new_peak = snap.net_liquidation
        rec = await self.store.equity.reset_peak(float(new_peak), reason)
        return rec.peak

    async def run_reconciliation(self, symbol: str | None = None) -> Any:
        return await self._r().run_reconciliation(symbol)

    async def run_days(self, n: int | None, pause_s: float = 0.0) -> LockstepReport:
        """Lock-step: play ``n`` trading days (None: until stopped)."""
        if self.driver is None:
            raise RuntimeError("run_days needs the embedded exchange in lock-step mode (broker 'sim')")
        return await self.driver.run_days(n, pause_s)

    def _r(self) -> PaperTradingRunner:
        if self.runner is None:
            raise RuntimeError("engine not started")
        return self.runner

    # ----------------------------------------------------------------- status and events

    def status(self) -> EngineStatus:
        r, gw = self.runner, self.broker
        now = self.clock.now() if self.clock is not None else dt.datetime.now(dt.timezone.utc)
        acct = r.last_account if r is not None else None
        nxt_market, nxt_at = (r.next_decision() if r is not None else (None, None))
        age = None
        if gw is not None and gw.last_message_at is not None:
            age = max(0.0, (dt.datetime.now(dt.timezone.utc) - gw.last_message_at).total_seconds())
        peak = getattr(acct, "peak_equity", None)
        nlv = getattr(acct, "net_liquidation", None)
        dd = (peak - nlv) / peak if peak and nlv is not None and peak > 0 else None
        working = tuple(f"{w.side} {w.remaining:g}/{w.qty} {w.month.local_symbol} @ {w.limit:g}"
                        for w in (self.order_manager.working_orders if self.order_manager else []))
        risk = self.risk_gate.snapshot() if self.risk_gate is not None else None
        champions = dict(self._champions)
        if self.champion is not None:
            for m in champions:
                sig = self.champion.last_signal(m)
                if sig is not None:
                    champions[m] = sig.version
        derisked = ({m: f for m in self.model_keys.key_of if (f := self.agent.size_fraction(m)) < 1.0}
                    if self.agent is not None and self.model_keys is not None and self.agent_enabled else {})
        return EngineStatus(
            mode=self.mode, connection=getattr(gw, "state", "disconnected"), connected=bool(gw and gw.is_connected),
            last_message_age_s=age,
            trading_state=self.risk_gate.trading_state.value if self.risk_gate is not None else "UNKNOWN",
            paused=bool(r and r.paused), agent_phase=self.agent.phase.value if self.agent is not None else "IDLE",
            champion=next(iter(champions.values()), None),
            next_decision_market=nxt_market, next_decision_at=nxt_at, now=now, account=self.account,
            net_liquidation=nlv, cash=getattr(acct, "total_cash", None), daily_pnl=getattr(acct, "daily_pnl", None),
            peak_equity=peak, drawdown=dd,
            positions={p.local_symbol: p.quantity for p in (r.last_positions or [])} if r is not None else {},
            working_orders=working, cycles_run=r.cycles_run if r is not None else 0,
            store_dir=str(self.store.directory) if self.store is not None else "",
            gross_exposure=risk.gross_exposure if risk is not None else None,
            max_gross_exposure=risk.max_gross_exposure if risk is not None else None,
            size_fraction=risk.size_fraction if risk is not None else 1.0,
            champions=champions, derisked=derisked,
            scheduled_orders=tuple(
                f"{t.market} target {t.target:+d} at {t.waiting_until:%Y-%m-%d %H:%M} UTC"
                for t in (r.desk.tickets.values() if r is not None else ()) if t.waiting_until is not None
                and not t.task.done()),
        )

    def _breaker_changed(self, t: Any) -> None:
        self.bus.publish(BreakerChanged(at=self.clock.now(), breaker=t.name.value, tripped=t.new.value != "ACTIVE",
                                        trading_state=t.trading_state.value, reason=t.reason, phase=t.new.value))

    def _agent_phase(self, market: str, phase: Any) -> None:
        self.bus.publish(AgentPhaseChanged(at=self.clock.now(), phase=getattr(phase, "value", str(phase)), market=market))


async def _quietly(name: str, coro: Any) -> None:
    try:
        await coro
    except Exception:  # noqa: BLE001 - shutdown goes on; each failure is logged
        log.exception("engine.stop_step_failed", step=name)


__all__ = [
    "BROKER_TIME_PROBE_S", "BROKER_TIME_SKEW_S", "EXCHANGE_STATE_FILE", "SIM_DEFAULT_ACCOUNT", "Engine",
    "EngineStatus", "StartRefused", "SwitchableClock",
]
