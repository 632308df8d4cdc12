"""PaperTradingRunner: the daily cycle (ARCHITECTURE "The daily cycle"), once per market and date.

connection -> account state -> bars and features -> self-healing agent -> champion signal ->
target -> ``OrderManager.move_to_target`` -> summary. A cycle is claimed in the store before it
runs (``cycles.claim``), so duplicate triggers, restarts and catch-ups are harmless, and one
``asyncio.Lock`` keeps two cycles from overlapping. The cycle does not hold the lock while an order
is worked: it returns once the orders are placed, and the order manager keeps working them on
their patience schedule in tracked background tasks. The agent and the signal are independent:
an agent failure never blocks the signal, a missing signal never blocks the agent.

In real time an APScheduler ``AsyncIOScheduler`` fires one ``CronTrigger`` per market at its
decision time; the job only signals (starts a tracked cycle task); holidays are checked inside it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from hydra_engine.config import RunnerConfig
from hydra_engine.events import (
    CycleStarted,
    EventBus,
    PauseChanged,
)
from hydra_engine.execution.cycle import CycleConfig, DailyCycle
from hydra_engine.execution.decisions import due_trading_date
from hydra_engine.execution.desk import ExecutionDesk, ExecutionTicket
from hydra_engine.markets import (
    MarketConfig,
    decision_at,
    is_trading_day,
    local_date,
    next_decision_after,
)
from hydra_engine.store.cycles import CycleStatus
from hydra_engine.store.kv import PAUSE_REASON, PAUSED
from hydra_engine.tasks import log_task_failure

if TYPE_CHECKING:
    from hydra_engine.clock import Clock
    from hydra_engine.execution.fill_journal import FillJournal
    from hydra_engine.execution.reconciler import ReconciliationReport, SlippageReconciler
    from hydra_engine.operations.restart_window import RestartWindow
    from hydra_engine.ports import AgentStep, Broker, ChampionSource, CycleStore, OrderRouter, RiskCheck

log = structlog.get_logger(__name__)

LIVE_ENV = "HYDRA_LIVE_CONFIRMED"
WINDOWED_TRIGGERS = ("schedule", "tick", "catch-up", "recovery", "retry")
"""Triggers that wait for the gateway's daily restart window to end (an operator's force does not)."""
MAX_CYCLE_ATTEMPTS = 5
"""A decision skipped for a lost connection is tried at most this many times in all."""
RETRY_INTERVAL_S = 120
"""Real-time mode: how often skipped decisions are looked at again."""


class LiveTradingRefused(ValueError):
    """Live trading was asked for without every confirmation."""


def check_live_allowed(trading_mode: str, live_confirmed: bool) -> None:
    """Live needs ``HYDRA_LIVE_CONFIRMED=true`` in the environment AND the operator's confirmation."""
    if trading_mode != "live":
        return
    env = os.environ.get(LIVE_ENV, "").strip().lower()
    missing = []
    if env != "true":
        missing.append(f"environment variable {LIVE_ENV}=true (it is {env or 'unset'!r})")
    if not live_confirmed:
        missing.append("the operator's confirmation (TUI modal or --yes-i-mean-live)")
    if missing:
        raise LiveTradingRefused("trading_mode = 'live' refused: missing " + " and ".join(missing))


class PaperTradingRunner:
    """Owns the cycle lock, the cycle tasks, the scheduler and the background execution tasks."""

    def __init__(
        self,
        broker: Broker,
        risk_gate: RiskCheck | None,
        order_manager: OrderRouter,
        fill_journal: FillJournal | None,
        agent_loop: AgentStep | None,
        model: ChampionSource,
        reconciler: SlippageReconciler | None,
        config: RunnerConfig | Mapping[str, Any] | None = None,
        *,
        store: CycleStore,
        markets: Sequence[MarketConfig],
        clock: Clock,
        bus: EventBus | None = None,
        cycle_config: CycleConfig | Mapping[str, Any] | None = None,
        live_confirmed: bool = False,
        restart_window: RestartWindow | None = None,
    ) -> None:
        self.config = RunnerConfig.from_mapping(config)
        self.restart_window = restart_window
        """The gateway's daily restart: scheduled, ticked and catch-up cycles due inside it wait until it ends."""
        check_live_allowed(self.config.trading_mode, live_confirmed)
        self.broker = broker
        self.risk_gate = risk_gate
        self.order_manager = order_manager
        self.fill_journal = fill_journal
        self.model = model
        self.reconciler = reconciler
        self.store = store
        self.markets = tuple(m for m in markets if m.enabled)
        if not self.markets:
            raise ValueError("markets: at least one enabled market is needed")
        self.clock = clock
        self.bus = bus or EventBus()
        self.cycle_config = CycleConfig.from_mapping(cycle_config)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.desk = ExecutionDesk(broker, order_manager, store, clock, self.cycle_config)
        self.cycle = DailyCycle(
            broker=broker, store=store, clock=clock, bus=self.bus, markets=self.markets, config=self.cycle_config,
            desk=self.desk, champion=model, risk_gate=risk_gate, agent_loop=agent_loop,
        )
        self._scheduler: Any = None
        self._ticker: asyncio.Task[Any] | None = None
        self._paused = False
        self._pause_reason = ""
        self._started = False
        self._stopping = False

    # ----------------------------------------------------------------- what the cycle last saw

    @property
    def agent_loop(self) -> Any:
        """The self-healing agent the cycle runs (None: no agent); replaceable between cycles."""
        return self.cycle.agent_loop

    @agent_loop.setter
    def agent_loop(self, agent: Any) -> None:
        self.cycle.agent_loop = agent

    @property
    def cycle_running(self) -> str | None:
        """``market/date`` of the cycle holding the lock, if any."""
        return self.cycle.running

    @property
    def cycles_run(self) -> int:
        return self.cycle.cycles_run

    @property
    def last_summary(self) -> dict[str, Any] | None:
        last = self.cycle.last_summary
        return None if last is None else last.to_dict()

    @property
    def last_account(self) -> Any:
        return self.cycle.last_account

    @property
    def last_positions(self) -> list[Any] | None:
        return self.cycle.last_positions

    # ----------------------------------------------------------------- life cycle

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def pause_reason(self) -> str:
        return self._pause_reason

    def market(self, symbol: str) -> MarketConfig:
        for m in self.markets:
            if m.symbol == symbol:
                return m
        raise KeyError(f"market {symbol!r} is not configured (configured: {', '.join(m.symbol for m in self.markets)})")

    async def start(self, *, schedule: bool = True, catch_up: bool | None = None, broker_time: bool = False) -> None:
        """Load the persisted pause; with ``schedule`` start APScheduler (real time) and catch up once.

        ``broker_time``: the clock is the broker's (an external simulator at another time or speed):
        an interval tick on that clock checks which decisions are due instead of wall-time cron jobs.
        """
        paused: bool = await self.store.kv.get(PAUSED)
        reason: str = await self.store.kv.get(PAUSE_REASON)
        self._paused, self._pause_reason = bool(paused), str(reason)
        self._started = True
        await self._resolve_interrupted()
        if schedule:
            await self._record_superseded()
        await self._resume_executions()
        if schedule and broker_time:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="runner-broker-time-tick")
            self._ticker.add_done_callback(log_task_failure)
        elif schedule:
            self._start_scheduler()
            if self.config.catch_up if catch_up is None else catch_up:
                for m in self.markets:
                    self.trigger(m.symbol, trigger="catch-up")
        log.info("runner.started", markets=[m.symbol for m in self.markets], paused=self._paused, scheduled=schedule)

    async def _resolve_interrupted(self) -> None:
        """Each cycle a crash left RUNNING: run it again for the same date while its target still
        stands (before the market's next decision: the order step then moves toward the same
        target), else close it INTERRUPTED. Both journalled, so no later start warns again."""
        for rec in await self.store.cycles.interrupted():
            m = next((x for x in self.markets if x.symbol == rec.market), None)
            now = self.clock.now()
            next_decision = next_decision_after(m, decision_at(m, rec.trading_date)) if m is not None else None
            detail = {"market": rec.market, "trading_date": rec.trading_date.isoformat(), "owner": rec.owner,
                      "started_at": rec.started_at.isoformat(), "attempts": rec.attempts}
            if m is not None and next_decision is not None and now < next_decision:
                log.warning("runner.cycle_interrupted_resumed", **detail)
                await self.store.ops.record("NOTE", f"cycle {rec.market} {rec.trading_date} cut off by a crash: "
                                            "run again toward its target", actor="runner", detail=detail)
                self.trigger(m.symbol, trigger="recovery", trading_date=rec.trading_date)
                continue
            summary = {**detail, "status": CycleStatus.INTERRUPTED.value,
                       "reason": "cut off by a crash; its order session was over at the next start"}
            await self.store.cycles.finish(rec.market, rec.trading_date, summary, status=CycleStatus.INTERRUPTED)
            await self.store.ops.record("NOTE", f"cycle {rec.market} {rec.trading_date} cut off by a crash: "
                                        "closed as INTERRUPTED", actor="runner", detail=detail)
            log.warning("runner.cycle_interrupted_closed", **detail)

    async def _resume_executions(self) -> None:
        """A decision whose order step a stop cut short (the order was waiting for its session, or
        working) is carried out after the restart while the decision stands: the desk moves the
        market to the same target (target-based, so a step that had finished places nothing).
        Not while paused, nor after an operator's flatten since the decision."""
        from hydra_engine.markets import last_decision_at_or_before

        if self._paused:
            return
        now = self.clock.now()
        flattens = [e for e in await self.store.ops.recent(20, kind="COMMAND") if e.command == "flatten"]
        for m in self.markets:
            day, at = last_decision_at_or_before(m, now)
            rec = await self.store.cycles.get(m.symbol, day)
            summary = (rec.summary or {}) if rec is not None else {}
            if rec is None or rec.status != CycleStatus.FINISHED or summary.get("target") is None:
                continue
            if not str(summary.get("orders", "")).startswith(("scheduled", "working")):
                continue  # nothing was left to do (already at target, no signal, paused, ...)
            if now >= next_decision_after(m, at) or any(e.at >= (rec.finished_at or rec.started_at) for e in flattens):
                continue
            task = asyncio.get_running_loop().create_task(self._resume(m, day, int(summary["target"]), summary),
                                                          name=f"resume-{m.symbol}-{day}")
            self._track(task)

    async def _resume(self, m: MarketConfig, day: dt.date, target: int, summary: Mapping[str, Any]) -> None:
        session = summary.get("execution_date")
        as_of = dt.date.fromisoformat(session) if session else None
        if not await self.broker.ensure_connected(timeout_s=30.0):
            log.warning("runner.execution_not_resumed", market=m.symbol, trading_date=str(day), reason="broker down")
            return
        month = (await self.broker.resolve_contract(m, as_of=as_of)).active
        outcome = await self.desk.start(m, day, target, month)
        log.warning("runner.execution_resumed", market=m.symbol, trading_date=str(day), target=target, outcome=outcome)
        await self.store.ops.record("NOTE", f"order step of {m.symbol} {day} (target {target}) resumed after a "
                                    f"restart: {outcome}", actor="runner",
                                    detail={"market": m.symbol, "trading_date": day.isoformat(), "target": target})

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.cron import CronTrigger

        sched = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone="UTC")
        for m in self.markets:
            trigger = CronTrigger(day_of_week="mon-fri", hour=m.decision_time.hour, minute=m.decision_time.minute,
                                  second=m.decision_time.second, timezone=m.time_zone)
            sched.add_job(self._scheduled, trigger, args=[m.symbol], id=f"cycle-{m.symbol}", name=f"daily cycle {m.symbol}",
                          misfire_grace_time=self.config.misfire_grace_s, coalesce=True, max_instances=1,
                          replace_existing=True)
        sched.add_job(self.retry_skipped, "interval", seconds=RETRY_INTERVAL_S, id="cycle-retry",
                      name="decisions skipped for a lost connection", coalesce=True, max_instances=1,
                      replace_existing=True)
        sched.start()
        self._scheduler = sched

    async def _tick_loop(self) -> None:
        """Broker-time mode: every ``broker_time_tick_s`` broker seconds, trigger the decisions now due:
        the latest decision of each market, once. A tick that comes late (a busy loop, a fast broker
        clock) still runs it, since the decision stands until the market's next one; only at the first
        tick, without ``catch_up``, is a decision older than the misfire grace left alone."""
        from hydra_engine.markets import last_decision_at_or_before

        claimed: set[tuple[str, dt.date]] = set()
        tick = dt.timedelta(seconds=self.config.broker_time_tick_s)
        grace = dt.timedelta(seconds=self.config.misfire_grace_s)
        first = True
        while not self._stopping:
            now = self.clock.now()
            for m in self.markets:
                day, at = last_decision_at_or_before(m, now)
                if (m.symbol, day) in claimed or (first and not self.config.catch_up and now - at > grace):
                    continue
                claimed.add((m.symbol, day))
                self.trigger(m.symbol, trigger="tick" if not first else "catch-up", trading_date=day)
            if not first:
                await self.retry_skipped()
            first = False
            await self.clock.sleep_until(now + tick)

    @property
    def scheduler(self) -> Any:
        """The APScheduler instance (None in lock-step or before ``start``)."""
        return self._scheduler

    def _scheduled(self, symbol: str) -> None:
        """The scheduler's job: check the holiday calendar, then only signal the runner."""
        m = self.market(symbol)
        today = local_date(m, self.clock.now())
        if not is_trading_day(m, today):
            log.info("runner.holiday_skip", market=symbol, date=str(today))
            return
        self.trigger(symbol, trigger="schedule")

    def trigger(self, symbol: str | None = None, *, trigger: str = "force", force: bool = False,
                trading_date: dt.date | None = None) -> asyncio.Task[Any]:
        """Start a cycle task (tracked) and return it; the lock and the claim make repeats harmless."""
        task = asyncio.get_running_loop().create_task(
            self.run_daily_cycle(symbol, force=force, trigger=trigger, trading_date=trading_date),
            name=f"cycle-{symbol or 'all'}-{trigger}",
        )
        self._track(task)
        return task

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_task_failure)

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop the scheduler; let a running cycle finish (bounded); cancel what is left."""
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        wait = self.config.stop_timeout_s if timeout_s is None else timeout_s
        cycles = [t for t in self._tasks if not t.done()]
        if cycles:
            _, pending = await asyncio.wait(cycles, timeout=wait)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        execs = await self.desk.stop(wait)
        await self.cycle.stop()
        log.info("runner.stopped", cycles_cancelled=len(cycles), executions_cancelled=len(execs))

    # ----------------------------------------------------------------- executions (ExecutionDesk)

    @property
    def executions(self) -> dict[str, ExecutionTicket]:
        return dict(self.desk.tickets)

    def executions_busy(self) -> bool:
        return self.desk.busy()

    async def wait_executions(self, timeout_s: float | None = None) -> bool:
        return await self.desk.wait(timeout_s)

    def cancel_working_orders(self, symbol: str | None = None) -> int:
        return self.desk.cancel_working_orders(symbol)

    async def flatten(self) -> list[asyncio.Task[Any]]:
        """Cancel every working order, then close each position through the gate (see ``ExecutionDesk``)."""
        return await self.desk.flatten(self.markets)

    # ----------------------------------------------------------------- pause

    async def pause(self, reason: str = "operator", *, actor: str = "operator") -> None:
        """No new orders or experiments; observation continues. Persisted and journalled."""
        self._paused, self._pause_reason = True, reason
        await self.store.kv.set(PAUSED, True)
        await self.store.kv.set(PAUSE_REASON, reason)
        await self.store.ops.command("pause", f"paused: {reason}", actor=actor)
        if self.agent_loop is not None:
            try:
                await self.agent_loop.pause()
            except Exception:  # noqa: BLE001 - the runner's pause stands without the agent
                log.exception("runner.agent_pause_failed")
        self.bus.publish(PauseChanged(at=self.clock.now(), paused=True, reason=reason))

    async def resume(self, *, actor: str = "operator") -> None:
        self._paused, self._pause_reason = False, ""
        await self.store.kv.set(PAUSED, False)
        await self.store.kv.set(PAUSE_REASON, "")
        await self.store.ops.command("resume", "resumed", actor=actor)
        if self.agent_loop is not None:
            try:
                await self.agent_loop.resume()
            except Exception:  # noqa: BLE001
                log.exception("runner.agent_resume_failed")
        self.bus.publish(PauseChanged(at=self.clock.now(), paused=False, reason=""))

    # ----------------------------------------------------------------- decisions

    def next_decision(self) -> tuple[str, dt.datetime]:
        """The next (market, UTC instant) decision after now."""
        now = self.clock.now()
        return min(((m.symbol, next_decision_after(m, now)) for m in self.markets), key=lambda x: x[1])

    async def wait_cycles(self, timeout_s: float | None = None) -> bool:
        """Wait for triggered cycle tasks (scheduler, catch-up, ``trigger``); True when none is left."""
        live = [t for t in self._tasks if not t.done()]
        if not live:
            return True
        _, pending = await asyncio.wait(live, timeout=timeout_s)
        return not pending

    # ----------------------------------------------------------------- the cycle

    async def run_daily_cycle(
        self,
        market: str | MarketConfig | None = None,
        *,
        force: bool = False,
        trigger: str | None = None,
        trading_date: dt.date | None = None,
    ) -> dict[str, Any]:
        """Run the cycle for ``market`` (None: every market) and return its summary.

        The trading date is the latest decision at or before now (``force``: today's trading date
        even before the decision time). A (market, date) already claimed returns status DUPLICATE.
        """
        trig = trigger or ("force" if force else "schedule")
        if market is None:
            out = [await self.run_daily_cycle(m, force=force, trigger=trig, trading_date=trading_date) for m in self.markets]
            return {"trigger": trig, "cycles": out}
        m = market if isinstance(market, MarketConfig) else self.market(market)
        day = trading_date or due_trading_date(m, self.clock.now(), force=force)
        await self._after_restart_window(m, day, trig)
        async with self._lock:
            return await self._cycle(m, day, trig)

    async def _after_restart_window(self, m: MarketConfig, day: dt.date, trig: str) -> None:
        """A scheduled (or ticked, caught-up, recovered) cycle due while the gateway restarts waits for
        the window's end on the engine clock; the trading date stays the one that was due."""
        window = self.restart_window
        if window is None or trig not in WINDOWED_TRIGGERS:
            return
        now = self.clock.now()
        if not window.contains(now):
            return
        end = window.end_after(now)
        log.info("runner.cycle_waits_for_gateway_restart", market=m.symbol, trading_date=str(day), trigger=trig,
                 window=str(window), until=end.isoformat())
        await self.clock.sleep_until(end)

    async def _claim(self, m: MarketConfig, day: dt.date, trig: str) -> bool:
        if await self.store.cycles.claim(m.symbol, day, trig):
            return True
        rec = await self.store.cycles.get(m.symbol, day)
        if rec is not None and rec.status == CycleStatus.RUNNING and rec.owner != self.store.cycles.owner:
            return await self.store.cycles.reclaim(m.symbol, day, trigger=f"recovery:{trig}")
        if rec is not None and self._retryable(m, rec):
            return await self.store.cycles.reclaim(m.symbol, day, trigger=f"retry:{trig}", status=CycleStatus.SKIPPED)
        return False

    def _retryable(self, m: MarketConfig, rec: Any) -> bool:
        """A cycle skipped for a lost connection may run again while its decision stands (before the
        market's next decision), at most ``MAX_CYCLE_ATTEMPTS`` times."""
        if rec.status != CycleStatus.SKIPPED or not (rec.summary or {}).get("retry"):
            return False
        if rec.attempts >= MAX_CYCLE_ATTEMPTS:
            return False
        return self.clock.now() < next_decision_after(m, decision_at(m, rec.trading_date))

    async def retry_skipped(self) -> list[asyncio.Task[Any]]:
        """Run again, now, the latest decision of each market whose cycle was skipped for a lost
        connection (the broker-time tick and a periodic job call this; the claim decides)."""
        from hydra_engine.markets import last_decision_at_or_before

        tasks = []
        for m in self.markets:
            day, _ = last_decision_at_or_before(m, self.clock.now())
            rec = await self.store.cycles.get(m.symbol, day)
            if rec is not None and self._retryable(m, rec):
                log.info("runner.cycle_retry", market=m.symbol, trading_date=str(day), attempts=rec.attempts)
                tasks.append(self.trigger(m.symbol, trigger="retry", trading_date=day))
        return tasks

    async def _record_superseded(self) -> None:
        """At a scheduled start, record now the decisions that a later one superseded while the engine
        was down. Cycles run one at a time, so a stop or a kill while the catch-ups wait their turn
        would otherwise leave them unaccounted for (``_record_missed`` runs when a cycle starts)."""
        from hydra_engine.markets import last_decision_at_or_before

        now = self.clock.now()
        for m in self.markets:
            day, _ = last_decision_at_or_before(m, now)
            await self._record_missed(m, day)

    async def _record_missed(self, m: MarketConfig, day: dt.date) -> None:
        """Decisions of ``m`` between its previous cycle and ``day`` that never ran (the engine was
        down, or still starting, at their time, and a later decision superseded them) are recorded
        SKIPPED with that reason, so every decision due is either run or accounted for."""
        prev = await self.store.cycles.latest_before(m.symbol, day)
        if prev is None:
            return  # a new store: nothing was due before its first decision
        d = prev.trading_date + dt.timedelta(days=1)
        while d < day:
            if is_trading_day(m, d) and await self.store.cycles.claim(m.symbol, d, "missed"):
                reason = (f"missed: the engine was not running (or still starting) at its decision time; "
                          f"superseded by the decision of {day.isoformat()}")
                await self.store.cycles.finish(m.symbol, d, {"market": m.symbol, "trading_date": d.isoformat(),
                                                            "skipped": reason}, status=CycleStatus.SKIPPED)
                log.warning("runner.decision_missed", market=m.symbol, trading_date=str(d), superseded_by=str(day))
            d += dt.timedelta(days=1)

    async def _cycle(self, m: MarketConfig, day: dt.date, trig: str) -> dict[str, Any]:
        if self._stopping:
            return {"market": m.symbol, "trading_date": day.isoformat(), "status": "STOPPING", "trigger": trig}
        if not await self._claim(m, day, trig):
            log.info("runner.cycle_duplicate", market=m.symbol, trading_date=str(day), trigger=trig)
            return {"market": m.symbol, "trading_date": day.isoformat(), "status": "DUPLICATE", "trigger": trig}
        await self._record_missed(m, day)
        self.bus.publish(CycleStarted(at=self.clock.now(), market=m.symbol, trading_date=day, trigger=trig))
        log.info("runner.cycle_started", market=m.symbol, trading_date=str(day), trigger=trig)
        summary = await self.cycle.run(m, day, trig, pause_reason=self._pause_reason if self._paused else None)
        return summary.to_dict()

    # ----------------------------------------------------------------- reconciliation

    async def run_reconciliation(self, symbol: str | None = None) -> ReconciliationReport:
        """The slippage reconciliation over the journalled fills (``ReconciliationReport``)."""
        if self.reconciler is None:
            raise RuntimeError("no slippage reconciler configured")
        report = await self.reconciler.reconcile(symbol)
        log.info("runner.reconciliation", symbol=symbol, n_fills=report.n_fills, verdict=report.verdict)
        return report

    def decision_time(self, symbol: str, day: dt.date) -> dt.datetime:
        return decision_at(self.market(symbol), day)

