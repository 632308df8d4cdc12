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

from hydra_engine.events import AccountUpdated, PositionsUpdated
from hydra_engine.markets import (
    MarketConfig,
    is_trading_day,
    last_decision_at_or_before,
    local_date,
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


def next_session_start(details: Any, now: dt.datetime, *, liquid: bool = True) -> dt.datetime | None:
    """Start of the session in progress or next (``now`` if one is open), from the contract details'
    trading (or liquid) hours; None when the details carry no hours."""
    from zoneinfo import ZoneInfo

    if details is None or not getattr(details, "timeZoneId", ""):
        return None
    try:
        sessions = details.liquidSessions() if liquid else details.tradingSessions()
        tz = ZoneInfo(details.timeZoneId)
    except Exception:  # noqa: BLE001 - unparseable hours: trade now rather than never
        return None
    for s in sessions:
        start = s.start if s.start.tzinfo else s.start.replace(tzinfo=tz)
        end = s.end if s.end.tzinfo else s.end.replace(tzinfo=tz)
        if end > now:
            return max(start, now)
    return None


def due_trading_date(market: MarketConfig, now: dt.datetime, *, force: bool = False) -> dt.date:
    """The trading date whose cycle is due at ``now``: the latest decision at or before ``now``;
    with ``force`` today's trading date even before its decision time (a forced, early cycle)."""
    if force:
        today = local_date(market, now)
        if is_trading_day(market, today):
            return today
    return last_decision_at_or_before(market, now)[0]


async def account_state(runner: Any, m: MarketConfig, day: dt.date, summary: dict[str, Any]) -> Any:
    """Step 2: account summary and positions -> daily P&L (stale flag), peak, breakers, closing mark."""
    snap = await runner.broker.get_account_summary(
        equity=runner.store.equity, trading_date=day, is_trading_day=lambda d: is_trading_day(m, d)
    )
    prev = await runner.store.equity.previous_mark(day)
    stale = bool(snap.daily_pnl_stale) or (prev is not None and trading_days_between(m, prev.trading_date, day) > 1)
    peak = await runner.store.equity.update_peak(snap.net_liquidation, day) if snap.net_liquidation > 0 else None
    positions = await runner.broker.get_positions()
    runner.last_account, runner.last_positions = snap, positions
    peak_v = peak.peak if peak is not None else snap.net_liquidation
    dd = (peak_v - snap.net_liquidation) / peak_v if peak_v > 0 else None
    summary.update(net_liquidation=round(snap.net_liquidation, 2), daily_pnl=None if snap.daily_pnl is None else round(snap.daily_pnl, 2),
                   pnl_stale=stale, peak_equity=round(peak_v, 2), drawdown=None if dd is None else round(dd, 6),
                   position_value=round(snap.gross_position_value, 2),
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
            peak_equity=peak_v, position_value=snap.gross_position_value, stale=stale, trading_date=day,
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
