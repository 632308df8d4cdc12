"""Pieces of the daily cycle that are pure decisions: which trading date is due, and how a
champion's probability becomes a target position.

Kept apart from the runner so the arithmetic can be read (and tested) without a broker: the
runner gathers the inputs (account, bars, quote), calls ``target_from_signal`` and hands the
target to the order manager, which orders only the difference.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import structlog

from hydra_engine.execution.sessions import session_start
from hydra_engine.execution.targets import position_notional

from hydra_engine.events import AccountUpdated, PositionsUpdated
from hydra_engine.markets import (
    MarketConfig,
    decision_at,
    is_trading_day,
    last_decision_at_or_before,
    local_date,
    next_trading_day,
    trading_date_at,
    trading_days_between,
)
from hydra_engine.risk.sizing import SizingResult, size_position

log = structlog.get_logger(__name__)
TRADE_LOSS_HEADROOM = 0.8
"""Size to 80% of the gate's single-trade loss cap: the order manager measures sigma on the traded
month's own bars, which differ a little from the continuous history sized on here."""
CONTINUOUS = "CONTFUT"
"""Bar-store contract key of the continuous (back-adjusted) history features are built on."""


@dataclass(frozen=True, slots=True)
class CycleConfig:
    """Settings of the signal -> target step and of order working (section ``[execution]``)."""

    long_threshold: float = field(default=0.53, metadata={"range": (0.5, 1.0)})
    """P(up) above this: long."""
    short_threshold: float = field(default=0.47, metadata={"range": (0.0, 0.5)})
    """P(up) below this: short (flat in between)."""
    allow_short: bool = True
    kelly_multiplier: float = field(default=0.25, metadata={"range": (0.0, 1.0)})
    """Fraction of full Kelly to use."""
    win_loss_ratio: float = field(default=1.0, metadata={"range": (0.01, 100.0)})
    """Average win / average loss assumed by Kelly (1.0: symmetric daily moves)."""
    k_sigma: float = field(default=3.0, metadata={"range": (0.5, 10.0)})
    """Risk per contract = k_sigma x daily sigma x multiplier (account currency)."""
    max_trade_loss_pct: float = field(default=1.0, metadata={"range": (0.01, 100.0)})
    """Sizing never exceeds the gate's single-trade loss cap (percent of equity)."""
    history_days: int = field(default=1500, metadata={"range": (60, 10_000)})
    """Calendar days of daily bars fetched the first time (later fetches are incremental)."""
    bars_for_features: int = field(default=1000, metadata={"range": (30, 20_000)})
    """Most recent stored bars used to build features."""
    patience_steps: tuple[tuple[float, float, int], ...] = (
        (0.0, 0.0, 0), (900.0, 0.5, 0), (1800.0, 1.0, 0), (3600.0, 1.0, 1),
    )
    """``(after_s, half_spreads, ticks_through)``: from the mid to one tick through the touch in an hour."""
    cancel_after_s: float = field(default=7200.0, metadata={"range": (60.0, 7 * 86_400.0)})
    wait_for_session: bool = True
    """Decide after the close, work the order in the next session: the order goes out at its open."""
    liquid_hours_only: bool = True
    """Wait for the liquid (regular) hours rather than the first electronic session (thin markets)."""
    submit_timeout_s: float = field(default=60.0, metadata={"range": (1.0, 3600.0)})
    """How long (real s) a cycle waits for its orders to be placed before it returns."""
    agent_timeout_s: float = field(default=600.0, metadata={"range": (1.0, 86_400.0)})
    """Longest (real s) the cycle waits for the agent before trading without it."""
    agent_market: str = ""
    """Market whose bars feed the self-healing agent (empty: the first configured)."""

    def __post_init__(self) -> None:
        if self.short_threshold > self.long_threshold:
            raise ValueError(
                f"execution.short_threshold = {self.short_threshold} must not exceed long_threshold = {self.long_threshold}"
            )

    @classmethod
    def from_mapping(cls, mapping: "CycleConfig | Mapping[str, Any] | None") -> "CycleConfig":
        if isinstance(mapping, CycleConfig):
            return mapping
        from hydra_engine.config import load_dataclass

        return load_dataclass(cls, mapping or {}, "execution")

    def patience(self) -> Any:
        from hydra_engine.execution.patience import PatienceSchedule

        return PatienceSchedule.from_config({"steps": [list(s) for s in self.patience_steps],
                                             "cancel_after_s": self.cancel_after_s})


@dataclass(frozen=True, slots=True)
class TargetDecision:
    """How the signal became a target (contracts, signed)."""

    target: int
    direction: str
    """LONG, FLAT or SHORT."""
    p_up: float
    sizing: SizingResult | None
    risk_per_contract: float
    """Account currency per contract at ``k_sigma``."""
    cap_trade_loss: int
    """Contracts allowed by the single-trade loss cap."""

    def to_dict(self) -> dict[str, Any]:
        s = self.sizing
        return {
            "target": self.target, "direction": self.direction, "p_up": round(self.p_up, 6),
            "risk_per_contract": round(self.risk_per_contract, 2), "cap_trade_loss": self.cap_trade_loss,
            "kelly_full": None if s is None else round(s.kelly_full, 6),
            "kelly_contracts": None if s is None else s.kelly_contracts,
            "binding": "trade_loss" if s is not None and self.cap_trade_loss < s.n_contracts else (None if s is None else s.binding),
        }


def target_from_signal(
    p_up: float,
    *,
    config: CycleConfig,
    market: MarketConfig,
    equity: float,
    daily_sigma: float,
    multiplier: float,
    adv: float,
    max_trade_loss_pct: float | None = None,
) -> TargetDecision:
    """Long / flat / short by thresholds, sized by fractional Kelly, capped by the market's contracts,
    its ADV fraction and the single-trade loss cap (so the gate is not asked for what it refuses)."""
    if not (isinstance(p_up, (int, float)) and 0.0 <= p_up <= 1.0):
        raise ValueError(f"p_up = {p_up!r}: must be a probability in [0, 1]")
    if p_up > config.long_threshold:
        sign, direction, win_prob = 1, "LONG", float(p_up)
    elif p_up < config.short_threshold and config.allow_short:
        sign, direction, win_prob = -1, "SHORT", 1.0 - float(p_up)
    else:
        return TargetDecision(0, "FLAT", float(p_up), None, 0.0, 0)
    rpc = config.k_sigma * max(daily_sigma, 0.0) * max(multiplier, 0.0)
    if not math.isfinite(rpc) or rpc <= 0 or adv <= 0 or equity <= 0:
        return TargetDecision(0, "FLAT", float(p_up), None, rpc if math.isfinite(rpc) else 0.0, 0)
    sizing = size_position(
        win_prob=win_prob, win_loss_ratio=config.win_loss_ratio, equity=equity, risk_per_contract=rpc, adv=adv,
        max_contracts=market.max_contracts, kelly_multiplier=config.kelly_multiplier,
        max_adv_fraction=market.max_adv_fraction,
    )
    cap_pct = config.max_trade_loss_pct if max_trade_loss_pct is None else max_trade_loss_pct
    cap = int(math.floor(TRADE_LOSS_HEADROOM * cap_pct / 100.0 * equity / rpc + 1e-9))
    n = min(sizing.n_contracts, cap)
    if n <= 0:
        direction = "FLAT"
    return TargetDecision(sign * n if n > 0 else 0, direction, float(p_up), sizing, rpc, cap)


@dataclass(slots=True)
class ExecutionTicket:
    """One market's order work started by a cycle (the task keeps running after the cycle)."""

    market: str
    trading_date: dt.date
    target: int
    task: Any
    """The ``asyncio.Task`` working it."""
    waiting_until: dt.datetime | None = None
    """Set while the task sleeps on the clock until the next session opens (the engine is idle)."""
    session_date: dt.date | None = None
    """Trading date of the session the orders are worked in (D+1 for a decision after D's close)."""


def clamp_move(target: int, current: float, max_order: int) -> int:
    """``target`` moved toward ``current`` so that an order adding exposure is at most ``max_order``
    contracts (the gate judges such an order's own size against the single-trade loss cap; a
    reversal is one such order, so it goes flat first). Orders that only reduce are never clamped."""
    cur = int(current)
    if target == cur:
        return int(target)
    reducing = cur != 0 and (target == 0 or (target > 0) == (cur > 0)) and abs(target) < abs(cur)
    step = int(target) - cur
    if reducing or abs(step) <= max(max_order, 0):
        return int(target)
    return cur + (max(max_order, 0) if step > 0 else -max(max_order, 0))


def due_trading_date(market: MarketConfig, now: dt.datetime, *, force: bool = False) -> dt.date:
    """The trading date whose cycle is due at ``now``: the latest decision at or before ``now``;
    with ``force`` today's trading date even before its decision time (a forced, early cycle)."""
    if force:
        today = local_date(market, now)
        if is_trading_day(market, today):
            return today
    return last_decision_at_or_before(market, now)[0]


def execution_date(market: MarketConfig, decision_date: dt.date, now: dt.datetime) -> dt.date:
    """The trading date of the session the decision on ``decision_date`` is executed in.

    A decision taken after D's close is worked in the next liquid session, D+1: its contract month,
    its daily P&L base and its order caps are all as of that session, never as of D. A forced cycle
    before the decision time (D's session still open) executes in D itself."""
    if now >= decision_at(market, decision_date):
        return next_trading_day(market, decision_date)
    return max(decision_date, trading_date_at(market, now))


async def account_state(runner: Any, m: MarketConfig, day: dt.date, summary: dict[str, Any]) -> Any:
    """Step 2: account summary and positions -> daily P&L (stale flag), peak, breakers, closing mark."""
    snap = await runner.broker.get_account_summary(
        equity=runner.store.equity, trading_date=day, is_trading_day=lambda d: is_trading_day(m, d)
    )
    prev = await runner.store.equity.previous_mark(day)
    stale = bool(snap.daily_pnl_stale) or (prev is not None and trading_days_between(m, prev.trading_date, day) > 1)
    peak = await runner.store.equity.update_peak(snap.net_liquidation, day) if snap.net_liquidation > 0 else None
    positions = await runner.broker.get_positions()
    # IB reports GrossPositionValue 0 for futures: exposure is positions x multiplier x mark
    exposure = await position_notional(runner.broker, positions, runner.markets)
    runner.last_account, runner.last_positions = snap, positions
    peak_v = peak.peak if peak is not None else snap.net_liquidation
    dd = (peak_v - snap.net_liquidation) / peak_v if peak_v > 0 else None
    summary.update(net_liquidation=round(snap.net_liquidation, 2), daily_pnl=None if snap.daily_pnl is None else round(snap.daily_pnl, 2),
                   pnl_stale=stale, peak_equity=round(peak_v, 2), drawdown=None if dd is None else round(dd, 6),
                   position_value=round(exposure, 2),
                   positions={p.local_symbol: p.quantity for p in positions})
    now = runner.clock.now()
    runner.bus.publish(AccountUpdated(at=now, account=snap.account, net_liquidation=snap.net_liquidation,
                                    cash=snap.total_cash, currency=snap.currency, daily_pnl=snap.daily_pnl,
                                    peak_equity=peak_v, drawdown_fraction=dd, stale=stale))
    runner.bus.publish(PositionsUpdated(at=now, positions={p.local_symbol: p.quantity for p in positions}))
    if runner.risk_gate is not None:
        from hydra_engine.risk.intents import AccountState

        state = runner.risk_gate.evaluate_account(AccountState(
            daily_pnl=0.0 if stale or snap.daily_pnl is None else snap.daily_pnl, current_equity=snap.net_liquidation,
            peak_equity=peak_v, position_value=exposure, stale=stale, trading_date=day,
        ))
        summary["trading_state"] = getattr(state, "value", str(state))
    # the closing mark of this trading date (the base of the next date's P&L)
    await runner.store.equity.record_mark(day, snap.net_liquidation, currency=snap.currency or "USD", source="cycle")
    return snap


async def load_bars(runner: Any, m: MarketConfig, day: dt.date, summary: dict[str, Any]) -> Any:
    """Step 3: new completed CONTFUT bars into the bar store; the stored bars up to ``day``."""
    cfg = runner.cycle_config
    try:
        since = await runner.store.bars.latest_date(m.symbol, CONTINUOUS)
        new = await runner.broker.get_daily_bars(m, since=since, lookback_days=cfg.history_days)
        if new:
            await runner.store.bars.upsert(m.symbol, CONTINUOUS, new)
        summary["bars_new"] = len(new)
    except Exception as exc:  # noqa: BLE001 - stored bars still serve; the gap is recorded
        summary["bars_error"] = f"{type(exc).__name__}: {exc}"
        log.warning("runner.bars_failed", market=m.symbol, error=str(exc))
    frame = await runner.store.bars.load(m.symbol, CONTINUOUS, end=day, limit=cfg.bars_for_features)
    frame = bars_until(frame, day)
    summary["bars"] = len(frame)
    summary["last_bar"] = str(frame.index[-1].date()) if len(frame) else None
    return frame


async def agent_step(runner: Any, day: dt.date, bars: Any) -> dict[str, Any]:
    """Run the agent's cycle in a tracked task; the signal waits for it at most ``agent_timeout_s``."""
    prev = runner._agent_task
    if prev is not None and not prev.done():
        return {"skipped": "the agent is still busy with an earlier cycle; the signal goes ahead"}
    task = asyncio.get_running_loop().create_task(
        runner.agent_loop.run_cycle(day, bars[["open", "high", "low", "close", "volume"]]), name=f"agent-{day}"
    )
    task.add_done_callback(_log_task_failure)
    runner._agent_task = task
    done, _ = await asyncio.wait({task}, timeout=runner.cycle_config.agent_timeout_s)
    if not done:
        log.warning("runner.agent_slow", trading_date=str(day), waited_s=runner.cycle_config.agent_timeout_s)
        return {"pending": "the agent is still working; the signal goes ahead"}
    if task.cancelled():
        return {"error": "agent cancelled"}
    exc = task.exception()
    if exc is not None:  # a failed agent never blocks the signal
        return {"error": f"{type(exc).__name__}: {exc}"}
    res = task.result()
    return {"phase": getattr(res.phase, "value", str(res.phase)), "findings": len(res.drift_findings),
            "diagnosis": getattr(getattr(res.diagnosis, "kind", None), "value", None),
            "experiments": len(res.experiments), "promoted": res.promoted,
            "awaiting_approval": res.awaiting_approval, "rolled_back": res.rolled_back,
            "champion": res.champion_version, "notes": list(res.notes)}


def _log_task_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("runner.task_failed", task=task.get_name(), error=repr(task.exception()))


def bars_until(frame: Any, day: dt.date) -> Any:
    """Rows of a date-indexed bar frame dated ``day`` or earlier (completed before the decision)."""
    import pandas as pd

    if frame is None or len(frame) == 0:
        return frame
    return frame[frame.index <= pd.Timestamp(day)]


class ExecutionDesk:
    """Step 6 of the cycle and what outlives it: one tracked task per market moving the position to
    its target. A target decided after the close waits (asleep on the engine clock) for the next
    session's open, then the order manager works the orders on their patience schedule. Markets
    may place at the same time: the gateway serialises its position and account requests."""

    def __init__(self, broker: Any, order_manager: Any, store: Any, clock: Any, config: CycleConfig) -> None:
        self.broker = broker
        self.order_manager = order_manager
        self.store = store
        self.clock = clock
        self.config = config
        self.tickets: dict[str, ExecutionTicket] = {}

    async def start(self, m: MarketConfig, day: dt.date | None, target: int, month: Any, *,
                    liquid: bool | None = None) -> str:
        """Start moving ``m`` to ``target``; returns what was done (for the cycle summary)."""
        now = self.clock.now()
        start_at = None
        if self.config.wait_for_session:
            start_at = session_start(getattr(month, "details", None), now,
                                          liquid=self.config.liquid_hours_only if liquid is None else liquid)
        waiting = start_at if start_at is not None and start_at > now else None
        session_day = trading_date_at(m, waiting or now)
        ticket = ExecutionTicket(m.symbol, day or local_date(m, now), target, None,
                                 waiting_until=waiting, session_date=session_day)
        ticket.task = asyncio.get_running_loop().create_task(
            self._execute(m, target, day, ticket), name=f"execute-{m.symbol}-{ticket.trading_date.isoformat()}"
        )
        ticket.task.add_done_callback(_log_task_failure)
        self.tickets[m.symbol] = ticket
        if ticket.waiting_until is not None:
            return f"scheduled: target {target} from {ticket.waiting_until.isoformat()} (next session)"
        return await self._submitted(ticket.task, m.symbol)

    async def _execute(self, m: MarketConfig, target: int, day: dt.date | None, ticket: ExecutionTicket) -> Any:
        if ticket.waiting_until is not None:
            log.info("runner.execution_scheduled", market=m.symbol, at=ticket.waiting_until.isoformat(), target=target)
            await self.clock.sleep_until(ticket.waiting_until)
            ticket.waiting_until = None
        # the order's session, not the decision's date: the daily-P&L base is the close mark of the
        # last completed session before it, and the contract month is the front month as of it
        session_day = trading_date_at(m, self.clock.now()) if ticket.session_date is None else ticket.session_date
        res = await self.order_manager.move_to_target(m, target, equity=self.store.equity, trading_date=session_day)
        log.info("runner.execution_done", market=m.symbol, trading_date=str(day), target=target,
                 filled=getattr(res, "filled", None), reasons=list(getattr(res, "reasons", ()) or ()))
        return res

    async def _placed(self, symbol: str) -> None:
        """Return once an order of ``symbol`` is working and the order manager is idle (parked)."""
        await self.order_manager.wait_idle(self.config.submit_timeout_s, min_working=1, symbol=symbol)

    async def _submitted(self, task: asyncio.Task[Any], symbol: str) -> str:
        """Wait until the orders are placed (then parked on their schedule) or the task ended."""
        om = self.order_manager
        idle = asyncio.ensure_future(self._placed(symbol))
        try:
            await asyncio.wait({task, idle}, timeout=self.config.submit_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)
        if task.done():
            if task.cancelled():
                return "cancelled"
            exc = task.exception()
            if exc is not None:
                return f"failed: {type(exc).__name__}: {exc}"
            legs = getattr(task.result(), "legs", ())
            if not legs:
                return "none: already at target"
            return "; ".join(f"{leg.direction} {leg.requested} -> {leg.status} ({leg.filled:g} filled)" for leg in legs)
        working = [w for w in om.working_orders if w.month.symbol == symbol]
        return "working: " + ", ".join(f"{w.side} {w.qty} {w.month.local_symbol} @ {w.limit:g}" for w in working)

    def cancel_working_orders(self, symbol: str | None = None) -> int:
        """Ask the broker to cancel every order the order manager is working (for ``symbol``)."""
        n = 0
        for w in list(getattr(self.order_manager, "working_orders", [])):
            if w.trade is None or (symbol is not None and w.month.symbol != symbol):
                continue
            try:
                self.broker.cancel_order(w.trade)
                n += 1
            except Exception as exc:  # noqa: BLE001 - reported; the order's own loop retries after a reconnect
                log.warning("runner.cancel_failed", order_ref=w.order_ref, error=str(exc))
        return n

    async def retire_previous(self, symbol: str) -> bool:
        """End an earlier cycle's work on ``symbol`` (the new target replaces it); False if it will not end."""
        prev = self.tickets.get(symbol)
        if prev is None or prev.task.done():
            return True
        if prev.waiting_until is None:
            self.cancel_working_orders(symbol)
        else:
            prev.task.cancel()
        done, _ = await asyncio.wait({prev.task}, timeout=15.0)
        return bool(done)

    async def flatten(self, markets: Any) -> list[asyncio.Task[Any]]:
        """Cancel every working order, then close each market's position through the gate from the
        open of its current or next trading session. Returns the tasks."""
        self.cancel_working_orders()
        for t in list(self.tickets.values()):
            if t.waiting_until is not None:
                t.task.cancel()
        await self.wait(15.0)
        tasks = []
        for m in markets:
            month = (await self.broker.resolve_contract(m)).active if self.config.wait_for_session else None
            await self.start(m, None, 0, month, liquid=False)
            tasks.append(self.tickets[m.symbol].task)
        return tasks

    def busy(self) -> bool:
        """True while a task does something other than sleep until its session or wait on parked orders."""
        om = self.order_manager
        live = [t for t in self.tickets.values() if not t.task.done()]
        if not live:
            return False
        if not om.idle:
            return True
        working = list(getattr(om, "working_orders", []))
        for t in live:
            if t.waiting_until is not None:
                continue
            mine = [w for w in working if w.month.symbol == t.market]
            if not mine or not all(w.parked.is_set() and not w.changed.is_set() for w in mine):
                return True
        return False

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for every task to end; True when none is left."""
        live = [t.task for t in self.tickets.values() if not t.task.done()]
        if not live:
            return True
        _, pending = await asyncio.wait(live, timeout=timeout_s)
        return not pending

    async def stop(self, wait_s: float) -> list[asyncio.Task[Any]]:
        """A clean stop leaves nothing working at the broker: cancel, wait (bounded), then cancel tasks."""
        live = [t.task for t in self.tickets.values() if not t.task.done()]
        if live:
            self.cancel_working_orders()
            for t in self.tickets.values():
                if t.waiting_until is not None:
                    t.task.cancel()
            _, still = await asyncio.wait(live, timeout=min(wait_s, 5.0)) if wait_s > 0 else (set(), set(live))
            for task in still:
                task.cancel()
            await asyncio.gather(*live, return_exceptions=True)
        return live
