"""The daily cycle of one market and trading date (ARCHITECTURE "The daily cycle"), read top to bottom.

``DailyCycle.run`` owns the steps between the runner's claim and the journalled summary:
connection -> account state -> bars -> self-healing agent -> champion signal -> target ->
``ExecutionDesk`` (the order manager works the orders in the execution session) -> a frozen
``CycleSummary``, persisted in the cycle row and published as ``CycleFinished``. The decision is made
after day D's close; the orders are worked in the next liquid session (``decisions.execution_date``),
and everything the order path reads is as of that session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import pandas as pd
import structlog

from hydra_engine.broker.errors import NotConnected
from hydra_engine.events import AccountUpdated, CycleFinished, EventBus, PositionsUpdated
from hydra_engine.execution.account_view import account_view
from hydra_engine.execution.bar_history import CONTINUOUS, refresh_continuous
from hydra_engine.execution.decisions import bars_until, clamp_move, execution_date, target_from_signal
from hydra_engine.execution.targets import market_stats, position_notional
from hydra_engine.markets import MarketConfig, is_trading_day
from hydra_engine.risk.intents import AccountState
from hydra_engine.risk.sizing import reduced_cap
from hydra_engine.store.cycles import CycleStatus
from hydra_engine.store.kv import LAST_CYCLE_DATE
from hydra_engine.tasks import log_task_failure

if TYPE_CHECKING:
    from hydra_engine.broker.records import AccountSnapshot, PositionSnapshot
    from hydra_engine.clock import Clock
    from hydra_engine.execution.desk import ExecutionDesk
    from hydra_engine.execution.patience import PatienceSchedule
    from hydra_engine.ports import AgentStep, Broker, ChampionSource, CycleStore, RiskCheck

log = structlog.get_logger(__name__)

SIZING_LOOKBACK_DAYS = 60
"""Daily bars of the traded month for sigma and ADV (a request the order manager never repeats)."""


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

    def patience(self) -> PatienceSchedule:
        from hydra_engine.execution.patience import PatienceSchedule

        return PatienceSchedule.from_config({"steps": [list(s) for s in self.patience_steps],
                                             "cancel_after_s": self.cancel_after_s})



@dataclass(frozen=True, slots=True)
class CycleSummary:
    """What one cycle did, as persisted in its row and published with ``CycleFinished``.

    ``trading_date`` is the decision's date D; ``execution_date`` the session the orders are worked
    in (D+1 after the close). Fields a cycle did not reach stay None and are left out of ``to_dict``.
    """

    market: str
    trading_date: str
    trigger: str
    status: str = CycleStatus.FINISHED.value
    started_at: str | None = None
    duration_s: float | None = None
    paused: bool = False
    error: str | None = None
    skipped: str | None = None
    retry: bool | None = None
    """A cycle skipped for a lost broker connection: the runner runs it again once connected, while
    the decision still stands (before the market's next one)."""
    net_liquidation: float | None = None
    daily_pnl: float | None = None
    pnl_stale: bool | None = None
    peak_equity: float | None = None
    drawdown: float | None = None
    position_value: float | None = None
    positions: Mapping[str, float] | None = None
    trading_state: str | None = None
    bars_new: int | None = None
    bars_readjusted: bool | None = None
    """True when the broker re-adjusted the continuous history (a roll) and the stored series was replaced."""
    bars_error: str | None = None
    bars: int | None = None
    last_bar: str | None = None
    features_error: str | None = None
    agent: Mapping[str, Any] | None = None
    agent_size_fraction: float | None = None
    """Share of the market's size the agent allowed (below 1 while its champion is de-risked)."""
    p_up: float | None = None
    signal_error: str | None = None
    champion: str | None = None
    execution_date: str | None = None
    target: int | None = None
    clamped_from: int | None = None
    direction: str | None = None
    contract: str | None = None
    adv: float | None = None
    sigma: float | None = None
    sizing: Mapping[str, Any] | None = None
    orders: str | None = None

    _ALWAYS = ("market", "trading_date", "trigger", "status", "paused", "p_up", "daily_pnl")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping stored in the cycle row (the keys the commands and the TUI read)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None or f.name in self._ALWAYS:
                out[f.name] = dict(v) if isinstance(v, Mapping) else v
        return out


class _Draft:
    """The summary's fields as the steps fill them in; frozen into a ``CycleSummary`` at the end."""

    __slots__ = ("values",)

    def __init__(self, **values: Any) -> None:
        self.values: dict[str, Any] = dict(values)

    def set(self, **values: Any) -> None:
        self.values.update(values)

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def freeze(self) -> CycleSummary:
        return CycleSummary(**self.values)


@dataclass(frozen=True, slots=True)
class AccountStep:
    """Step 2's result: the account at the decision, its positions and exposure."""

    snapshot: AccountSnapshot
    positions: list[PositionSnapshot]
    exposure: float


class DailyCycle:
    """One market's cycle for one trading date, from the broker check to the journalled summary."""

    def __init__(
        self,
        *,
        broker: Broker,
        store: CycleStore,
        clock: Clock,
        bus: EventBus,
        markets: Sequence[MarketConfig],
        config: CycleConfig,
        desk: ExecutionDesk,
        champion: ChampionSource,
        risk_gate: RiskCheck | None = None,
        agent_loop: AgentStep | None = None,
    ) -> None:
        self.broker, self.store, self.clock, self.bus = broker, store, clock, bus
        self.markets = tuple(markets)
        self.config = config
        self.desk = desk
        self.champion = champion
        self.risk_gate = risk_gate
        self.agent_loop = agent_loop
        self._agent_tasks: dict[str, asyncio.Task[Any]] = {}
        """Each market's agent step still running (at most one per market)."""
        self.running: str | None = None
        """``market/date`` of the cycle under way, if any."""
        self.last_summary: CycleSummary | None = None
        self.last_account: AccountSnapshot | None = None
        self.last_positions: list[PositionSnapshot] | None = None
        self.cycles_run = 0

    async def run(self, m: MarketConfig, day: dt.date, trigger: str, *, pause_reason: str | None = None) -> CycleSummary:
        """Run the steps for (``m``, ``day``), then persist and publish the summary (also when cancelled)."""
        started = time.perf_counter()
        self.running = f"{m.symbol}/{day.isoformat()}"
        draft = _Draft(market=m.symbol, trading_date=day.isoformat(), trigger=trigger,
                       paused=pause_reason is not None, started_at=self.clock.now().isoformat())
        status = CycleStatus.FINISHED
        try:
            status = await self._steps(m, day, draft, pause_reason)
        except asyncio.CancelledError:
            draft.set(error="cancelled (engine stopping)")
            status = CycleStatus.FAILED
            raise
        except (NotConnected, ConnectionError) as exc:  # the gateway went away mid-cycle: not a failed decision
            log.warning("runner.cycle_disconnected", market=m.symbol, trading_date=str(day), error=str(exc))
            draft.set(skipped=f"broker disconnected mid-cycle ({type(exc).__name__}: {exc}); run again once connected",
                      retry=True)
            status = CycleStatus.SKIPPED
        except Exception as exc:  # noqa: BLE001 - recorded in the cycle row and the event
            log.exception("runner.cycle_failed", market=m.symbol, trading_date=str(day))
            draft.set(error=f"{type(exc).__name__}: {exc}")
            status = CycleStatus.FAILED
        finally:
            draft.set(status=status.value, duration_s=round(time.perf_counter() - started, 3))
            summary = draft.freeze()
            await self._record(m, day, summary, status)
        return summary

    async def _record(self, m: MarketConfig, day: dt.date, summary: CycleSummary, status: CycleStatus) -> None:
        try:
            await asyncio.shield(self.store.cycles.finish(m.symbol, day, summary.to_dict(), status))
            await self.store.kv.set(LAST_CYCLE_DATE, day.isoformat())
        except Exception:  # noqa: BLE001
            log.exception("runner.cycle_record_failed", market=m.symbol)
        self.running = None
        self.cycles_run += 1
        self.last_summary = summary
        self.bus.publish(CycleFinished(at=self.clock.now(), market=m.symbol, trading_date=day,
                                       outcome=status.value, summary=summary.to_dict()))
        log.info("runner.cycle_finished", market=m.symbol, trading_date=str(day), status=status.value,
                 target=summary.target, p_up=summary.p_up, orders=summary.orders)

    async def _steps(self, m: MarketConfig, day: dt.date, draft: _Draft, pause_reason: str | None) -> CycleStatus:
        # 1. connection
        if not await self.broker.ensure_connected(timeout_s=10.0):
            draft.set(skipped="broker not connected (or state unknown): run again once connected", retry=True)
            log.warning("runner.cycle_skipped_disconnected", market=m.symbol, trading_date=str(day))
            return CycleStatus.SKIPPED
        # 2. account state at the decision (the P&L of session D)
        acct = await self._account_state(m, day, draft)
        # 3. data
        bars = await self._load_bars(m, day, draft)
        features = None
        if bars is not None and len(bars):
            try:
                from hydra_engine.model.features import build_features

                features = await asyncio.to_thread(build_features, bars)
            except Exception as exc:  # noqa: BLE001 - no features: no signal, the agent still observes
                draft.set(features_error=f"{type(exc).__name__}: {exc}")
        # 4. self-heal (independent of the signal): this market's agent, on its own bars
        if self.agent_loop is not None and bars is not None and len(bars):
            draft.set(agent=await self._agent_step(m.symbol, day, bars))
        # 5. signal from this market's champion
        p_up = None
        if features is not None and len(features):
            try:
                p_up = await self.champion.predict_proba(m.symbol, features)
            except Exception as exc:  # noqa: BLE001 - a broken champion means no trade today, not a crash
                draft.set(signal_error=f"{type(exc).__name__}: {exc}")
                log.warning("runner.signal_failed", market=m.symbol, error=str(exc))
        signal = self.champion.last_signal(m.symbol)
        draft.set(p_up=None if p_up is None else round(float(p_up), 6), champion=signal.version if signal else None)
        if p_up is None:
            draft.set(orders="none: no signal")
            return CycleStatus.FINISHED
        # 6. target and execution in session D+1
        if pause_reason is not None:
            draft.set(orders=f"none: paused ({pause_reason})")
            return CycleStatus.FINISHED
        await self._target_and_execute(m, day, float(p_up), bars, acct, draft)
        return CycleStatus.FINISHED

    async def _account_state(self, m: MarketConfig, day: dt.date, draft: _Draft) -> AccountStep:
        """Account summary and positions -> daily P&L of D (stale flag), peak, breakers, D's closing mark."""
        view = await account_view(self.broker, self.store.equity, day, lambda d: is_trading_day(m, d))
        snap = view.snapshot
        peak = await self.store.equity.update_peak(snap.net_liquidation, day) if snap.net_liquidation > 0 else None
        positions = await self.broker.get_positions()
        # IB reports GrossPositionValue 0 for futures: exposure is positions x multiplier x mark
        exposure = await position_notional(self.broker, positions, self.markets)
        self.last_account, self.last_positions = snap, positions
        peak_v = peak.peak if peak is not None else snap.net_liquidation
        dd = (peak_v - snap.net_liquidation) / peak_v if peak_v > 0 else None
        held = {p.local_symbol: p.quantity for p in positions}
        draft.set(net_liquidation=round(snap.net_liquidation, 2),
                  daily_pnl=None if view.daily_pnl is None else round(view.daily_pnl, 2), pnl_stale=view.stale,
                  peak_equity=round(peak_v, 2), drawdown=None if dd is None else round(dd, 6),
                  position_value=round(exposure, 2), positions=held)
        now = self.clock.now()
        self.bus.publish(AccountUpdated(at=now, account=snap.account, net_liquidation=snap.net_liquidation,
                                        cash=snap.total_cash, currency=snap.currency, daily_pnl=view.daily_pnl,
                                        peak_equity=peak_v, drawdown_fraction=dd, stale=view.stale))
        self.bus.publish(PositionsUpdated(at=now, positions=held))
        if self.risk_gate is not None:
            state = self.risk_gate.evaluate_account(AccountState(
                daily_pnl=view.gate_pnl, current_equity=snap.net_liquidation,
                peak_equity=peak_v, position_value=exposure, stale=view.stale, trading_date=day,
            ))
            draft.set(trading_state=getattr(state, "value", str(state)))
        # the closing mark of this trading date (the base of the next session's P&L)
        await self.store.equity.record_mark(day, snap.net_liquidation, currency=snap.currency or "USD", source="cycle")
        return AccountStep(snap, positions, exposure)

    async def _load_bars(self, m: MarketConfig, day: dt.date, draft: _Draft) -> pd.DataFrame:
        """New completed CONTFUT bars into the bar store; the stored bars up to ``day``."""
        cfg = self.config
        try:
            refreshed = await refresh_continuous(self.broker, self.store.bars, m, cfg.history_days)
            draft.set(bars_new=refreshed.new)
            if refreshed.readjusted:
                draft.set(bars_readjusted=True)
        except Exception as exc:  # noqa: BLE001 - stored bars still serve; the gap is recorded
            draft.set(bars_error=f"{type(exc).__name__}: {exc}")
            log.warning("runner.bars_failed", market=m.symbol, error=str(exc))
        frame = await self.store.bars.load(m.symbol, CONTINUOUS, end=day, limit=cfg.bars_for_features)
        frame = bars_until(frame, day)
        draft.set(bars=len(frame), last_bar=str(frame.index[-1].date()) if len(frame) else None)
        return frame

    async def _agent_step(self, market: str, day: dt.date, bars: pd.DataFrame) -> dict[str, Any]:
        """Run the market's agent cycle in a tracked task; the signal waits for it at most ``agent_timeout_s``."""
        assert self.agent_loop is not None
        prev = self._agent_tasks.get(market)
        if prev is not None and not prev.done():
            return {"skipped": "the agent is still busy with an earlier cycle; the signal goes ahead"}
        task = asyncio.get_running_loop().create_task(
            self.agent_loop.run_cycle(market, day, bars[["open", "high", "low", "close", "volume"]]),
            name=f"agent-{market}-{day}",
        )
        task.add_done_callback(log_task_failure)
        self._agent_tasks[market] = task
        done, _ = await asyncio.wait({task}, timeout=self.config.agent_timeout_s)
        if not done:
            log.warning("runner.agent_slow", market=market, trading_date=str(day), waited_s=self.config.agent_timeout_s)
            return {"pending": "the agent is still working; the signal goes ahead"}
        if task.cancelled():
            return {"error": "agent cancelled"}
        exc = task.exception()
        if exc is not None:  # a failed agent never blocks the signal
            return {"error": f"{type(exc).__name__}: {exc}"}
        res: Any = task.result()
        if res is None:
            return {"skipped": "grouped market: it trades its group's champion, healed on the group's lead market"}
        return {"phase": getattr(res.phase, "value", str(res.phase)), "findings": len(res.drift_findings),
                "diagnosis": getattr(getattr(res.diagnosis, "kind", None), "value", None),
                "experiments": len(res.experiments), "promoted": res.promoted,
                "awaiting_approval": res.awaiting_approval, "rolled_back": res.rolled_back,
                "champion": res.champion_version, "notes": list(res.notes)}

    async def _target_and_execute(self, m: MarketConfig, day: dt.date, p_up: float, bars: pd.DataFrame,
                                  acct: AccountStep, draft: _Draft) -> None:
        cfg = self.config
        session_day = execution_date(m, day, self.clock.now())
        # the month traded is the front month as of the execution session (D+1), not the decision date
        month = (await self.broker.resolve_contract(m, as_of=session_day)).active
        draft.set(execution_date=session_day.isoformat())
        # sigma and ADV of the traded month, as the order manager measures them for the gate's
        # trade-loss check (its last 20 bars); a 60-day request, so it never repeats the order
        # manager's 45-day one (IB refuses identical history requests within 15 s)
        try:
            stats = market_stats(await self.broker.get_daily_bars(month, lookback_days=SIZING_LOOKBACK_DAYS))
        except Exception as exc:  # noqa: BLE001 - the continuous history is a fair stand-in
            log.warning("runner.month_bars_failed", market=m.symbol, error=str(exc))
            stats = market_stats([])
        if stats.sigma <= 0 or stats.adv <= 0:
            stats = market_stats(list(bars.tail(21).itertuples()))
        gate_cap = getattr(getattr(self.risk_gate, "config", None), "max_trade_loss_pct", cfg.max_trade_loss_pct)
        # drawdown re-entry: the gate's size fraction scales the market's contract cap; a de-risked
        # champion (plainly worse than a coin, no candidate passed yet) scales it again, to 0 by default
        sized = replace(m, max_contracts=reduced_cap(m.max_contracts, getattr(self.risk_gate, "size_fraction", 1.0)))
        agent_fraction = self.agent_loop.size_fraction(m.symbol) if self.agent_loop is not None else 1.0
        if agent_fraction < 1.0:
            sized = replace(sized, max_contracts=reduced_cap(sized.max_contracts, agent_fraction)
                            if agent_fraction > 0 else 0)
            draft.set(agent_size_fraction=agent_fraction)
        decision = target_from_signal(p_up, config=cfg, market=sized, equity=acct.snapshot.net_liquidation,
                                      daily_sigma=stats.sigma, multiplier=month.multiplier, adv=stats.adv,
                                      max_trade_loss_pct=min(cfg.max_trade_loss_pct, gate_cap))
        draft.set(target=decision.target, direction=decision.direction, contract=month.local_symbol,
                  adv=round(stats.adv, 1), sigma=round(stats.sigma, 6), sizing=decision.to_dict())
        if not await self.desk.retire_previous(m.symbol):
            draft.set(orders="none: earlier orders still working")
            return
        held = {p.con_id: p.quantity for p in acct.positions if p.symbol == m.symbol and p.quantity}
        target = clamp_move(decision.target, held.get(month.con_id, 0.0), decision.cap_trade_loss)
        if target != decision.target:  # one order may not exceed the trade-loss cap (a reversal goes flat first)
            draft.set(target=target, clamped_from=decision.target)
        if set(held) <= {month.con_id} and held.get(month.con_id, 0.0) == target:
            draft.set(orders="none: already at target")
            return
        draft.set(orders=await self.desk.start(m, day, target, month))

    async def stop(self) -> None:
        """Cancel agent steps still running (the runner has stopped triggering cycles)."""
        running = [t for t in self._agent_tasks.values() if not t.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
