"""RiskGate: the only place an order can become an ``Approval``.

``check`` is synchronous, pure decision logic over in-memory state (so the order manager can call
it between two awaits without another task slipping in between the decision and the count). Every
change it makes (a breaker phase, the day's order count) is written behind it by one writer task
on the shared connection; ``check_durable`` and ``flush`` wait for that write. If a write fails the
gate fails closed: every later check is denied until a write succeeds.

Checks, in order: inputs (NaN/inf/negative prices, non-positive equity -> a Denial naming the
field), new trading day (ticks breaker cooldowns), account breakers (daily loss unless the P&L is
stale, drawdown from the peak), trading state (HALTED: nothing; REDUCING: only reducing orders),
per-order limits for orders that increase exposure (position size per market, account-wide gross
notional, single-trade loss at ``k_sigma``; all size caps scaled by ``reentry_size_fraction``
while the drawdown breaker is in re-entry), the price band around the mid (every order and
reprice), and the daily order cap.

One ``k_sigma``: the gate is given the sizing's ``execution.k_sigma`` by whoever builds it, and an
intent that carries ``sigma_loss`` (its loss on a one-sigma day) is judged at that k; only an
intent without it is judged on the caller's own ``trade_loss``.

Daily order cap: the count is orders APPROVED on the trading date (approval is counted even if the
order is never sent: conservative), persisted per date. A reprice (``is_reprice``) counts as one
more order when ``reprices_count_toward_cap`` is true (default: every modification is a message
to the exchange and counts); when false, reprices are neither counted nor stopped by the cap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
import structlog

from hydra_engine.markets import TradingCalendar, weekdays
from hydra_engine.risk.breakers import (
    STATE_MAP,
    BreakerBoard,
    BreakerName,
    BreakerPhase,
    BreakerTransition,
    level_tag,
)
from hydra_engine.risk.intents import (
    AccountState,
    Approval,
    Denial,
    OrderIntent,
    TradingState,
    _issue_approval,
)
from hydra_engine.store.breakers_repo import BreakerRecord, BreakersRepo, OrderCount

log = structlog.get_logger(__name__)

DEFAULT_K_SIGMA = 3.0
"""The k of a gate built without one; the engine passes ``execution.k_sigma`` (same default)."""


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Risk limits (section ``[risk]``). Percentages are percent (2.0 means 2 %)."""

    max_daily_loss_pct: float = field(default=2.0, metadata={"range": (0.01, 100.0)})
    """Daily loss limit, percent of the trading day's opening equity (equity - daily P&L)."""
    max_drawdown_pct: float = field(default=10.0, metadata={"range": (0.1, 100.0)})
    """Drawdown limit, percent below the persisted equity peak."""
    max_position_value: float = field(default=2_000_000.0, metadata={"range": (0.0, None)})
    """Largest |signed notional| after an order, account currency."""
    max_contracts: int = field(default=10, metadata={"range": (0, 100_000)})
    """Largest |position| after an order, contracts."""
    max_gross_exposure: float = field(default=4_000_000.0, metadata={"range": (0.0, None)})
    """Largest account-wide gross notional (sum of |notional| over all markets) after an order."""
    max_trade_loss_pct: float = field(default=1.0, metadata={"range": (0.01, 100.0)})
    """Largest k-sigma loss of one order, percent of current equity."""
    price_band_bps: float = field(default=150.0, metadata={"range": (1.0, 10_000.0)})
    """A limit further than this from the mid (basis points) is denied; reprices included."""
    max_orders_per_day: int = field(default=40, metadata={"range": (1, 100_000)})
    reprices_count_toward_cap: bool = True
    """True: each approved reprice counts as an order toward ``max_orders_per_day``."""
    daily_loss_cooldown_days: int = field(default=1, metadata={"range": (0, 60)})
    drawdown_cooldown_days: int = field(default=5, metadata={"range": (0, 60)})
    position_size_cooldown_days: int = field(default=1, metadata={"range": (0, 60)})
    trade_loss_cooldown_days: int = field(default=0, metadata={"range": (0, 60)})
    reentry_size_fraction: float = field(default=0.5, metadata={"range": (0.0, 1.0)})
    """After the drawdown breaker's cooldown, while the drawdown is still past its limit: the
    fraction of every size cap (contracts, notional, gross) an increasing order may use."""
    drawdown_retrip_margin_pct: float = field(default=1.0, metadata={"range": (0.0, 100.0)})
    """In re-entry the drawdown breaker trips again only beyond its trip level plus this (points)."""

    def __post_init__(self) -> None:
        for f in self.__dataclass_fields__.values():  # type: ignore[attr-defined]
            rng = f.metadata.get("range")
            if rng is None:
                continue
            v = getattr(self, f.name)
            lo, hi = rng
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or \
                    (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ValueError(f"risk.{f.name}={v!r} out of range [{lo}, {'inf' if hi is None else hi}]")

    def cooldowns(self) -> dict[BreakerName, int]:
        return {
            BreakerName.DAILY_LOSS: self.daily_loss_cooldown_days,
            BreakerName.DRAWDOWN: self.drawdown_cooldown_days,
            BreakerName.POSITION_SIZE: self.position_size_cooldown_days,
            BreakerName.SINGLE_TRADE_LOSS: self.trade_loss_cooldown_days,
        }


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """What the TUI and ``status`` show about the gate."""

    trading_state: TradingState
    trading_date: dt.date | None
    orders_today: int
    reprices_today: int
    max_orders_per_day: int
    breakers: tuple[BreakerRecord, ...]
    daily_pnl_stale: bool
    persist_error: str | None
    gross_exposure: float | None = None
    """Account-wide gross notional at the last account evaluation (the cycle's account step)."""
    max_gross_exposure: float = 0.0
    size_fraction: float = 1.0
    """Fraction of the size caps in force (below 1 while the drawdown breaker is in re-entry)."""
    k_sigma: float = DEFAULT_K_SIGMA


TransitionListener = Callable[[BreakerTransition], None]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _added_notional(current: float, after: float, value_after: float) -> float:
    """Gross notional an order adds in its market: |value after| x (|after| - |current|) / |after|
    (same price and multiplier before and after, so a flip adds only its excess). A flattening
    order's removed notional is unknown here (0 after): counted as 0, it never adds."""
    if after == 0:
        return 0.0
    return abs(value_after) * (abs(after) - abs(current)) / abs(after)


class RiskGate:
    """Decides every order; persists breakers and daily counts through ``BreakersRepo``."""

    def __init__(self, config: RiskConfig | None = None, repo: BreakersRepo | None = None, *,
                 on_transition: TransitionListener | None = None,
                 today: Callable[[], dt.date] = _utc_today,
                 is_trading_day: TradingCalendar = weekdays,
                 k_sigma: float = DEFAULT_K_SIGMA) -> None:
        """``is_trading_day`` is the exchange calendar cooldowns count on (the engine passes "any
        configured market trades"); ``k_sigma`` the sizing's ``execution.k_sigma``."""
        if not _finite(k_sigma) or k_sigma <= 0:
            raise ValueError(f"k_sigma={k_sigma!r}: must be a finite number > 0")
        self.config = config or RiskConfig()
        self.k_sigma = float(k_sigma)
        self._repo = repo
        self._listeners: list[TransitionListener] = [on_transition] if on_transition else []
        self._today = today
        self._is_trading_day = is_trading_day
        self._board = BreakerBoard(self.config.cooldowns(), is_trading_day=is_trading_day)
        self._gross: float | None = None
        self._date: dt.date | None = None
        self._count = OrderCount(dt.date.min)
        self._dirty_counts: dict[dt.date, OrderCount] = {}
        self._stale = False
        self._loaded = repo is None
        self._writer: asyncio.Task[None] | None = None
        self._persist_error: str | None = None

    @classmethod
    async def open(cls, conn: aiosqlite.Connection, config: RiskConfig | None = None, *, tx: Any = None,
                   on_transition: TransitionListener | None = None,
                   today: Callable[[], dt.date] = _utc_today,
                   is_trading_day: TradingCalendar = weekdays,
                   k_sigma: float = DEFAULT_K_SIGMA) -> RiskGate:
        """A gate over the store's connection, with its persisted state loaded."""
        gate = cls(config, BreakersRepo(conn, tx), on_transition=on_transition, today=today,
                   is_trading_day=is_trading_day, k_sigma=k_sigma)
        await gate.load()
        return gate

    async def load(self) -> None:
        """Read breakers and the latest day's order count (before this, every check is denied)."""
        if self._repo is None:
            self._loaded = True
            return
        records = await self._repo.load_breakers()
        self._board = BreakerBoard(self.config.cooldowns(), records.values(), is_trading_day=self._is_trading_day)
        latest = await self._repo.latest_order_count()
        if latest is not None:
            self._count, self._date = latest, latest.trading_date
        days = [r.last_day for r in records.values() if r.last_day] + ([self._date] if self._date else [])
        self._date = max(days) if days else None
        self._loaded = True
        log.info("risk.gate_loaded", trading_state=self.trading_state.value, trading_date=str(self._date),
                 orders_today=self.orders_today)

    def add_listener(self, listener: TransitionListener) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------------ reading

    @property
    def trading_state(self) -> TradingState:
        return self._board.trading_state()

    @property
    def trading_date(self) -> dt.date | None:
        return self._date

    @property
    def orders_today(self) -> int:
        return self._count.orders if self._count.trading_date == self._date else 0

    def breaker_phase(self, name: BreakerName | str) -> BreakerPhase:
        return self._board.phase(BreakerName(name))

    @property
    def is_trading_day(self) -> TradingCalendar:
        """The exchange calendar the cooldowns count on."""
        return self._is_trading_day

    @property
    def size_fraction(self) -> float:
        """Fraction of the size caps in force: ``reentry_size_fraction`` during drawdown re-entry."""
        return self.config.reentry_size_fraction if self._board.in_reentry(BreakerName.DRAWDOWN) else 1.0

    def snapshot(self) -> RiskSnapshot:
        recs = self._board.records()
        reprices = self._count.reprices if self._count.trading_date == self._date else 0
        return RiskSnapshot(self.trading_state, self._date, self.orders_today, reprices,
                            self.config.max_orders_per_day, tuple(recs[n] for n in BreakerName),
                            self._stale, self._persist_error, gross_exposure=self._gross,
                            max_gross_exposure=self.config.max_gross_exposure, size_fraction=self.size_fraction,
                            k_sigma=self.k_sigma)

    # ------------------------------------------------------------------ days and breakers

    def on_new_trading_day(self, trading_date: dt.date, trading_days: int | None = None) -> list[BreakerTransition]:
        """Move to ``trading_date`` (ignored unless later than the current one): tick cooldowns and
        start a fresh order count. Cooldowns count the gate's ``is_trading_day`` calendar unless
        ``trading_days`` (elapsed) is given."""
        if self._date is not None and trading_date <= self._date:
            return []
        self._date = trading_date
        if self._count.trading_date != trading_date:
            self._count = OrderCount(trading_date)
        out = self._board.on_new_trading_day(trading_date, trading_days)
        self._announce(out)
        self._schedule_persist()
        return out

    def reset_breaker(self, name: BreakerName | str) -> BreakerTransition | None:
        """Operator override (journal it at the call site): the breaker goes back to ACTIVE now."""
        t = self._board.reset(BreakerName(name), self._date)
        if t is not None:
            self._announce([t])
            self._schedule_persist()
        return t

    def evaluate_account(self, account: AccountState) -> TradingState:
        """Update the account breakers from ``account`` without an order (start of a cycle)."""
        problems = self._account_problems(account)
        if problems:
            log.warning("risk.account_unusable", problems=problems, trading_state=self.trading_state.value)
        else:
            self._roll_day(account, None)
            self._account_breakers(account)
            self._gross = abs(account.position_value)
            self._schedule_persist()
        return self.trading_state

    # ------------------------------------------------------------------ the decision

    def check(self, intent: OrderIntent, account: AccountState) -> Approval | Denial:
        """Approve ``intent`` (bound to it, usable once) or deny it with every reason found."""
        if not isinstance(intent, OrderIntent):
            raise TypeError(f"RiskGate.check needs an OrderIntent, got {type(intent).__name__}")
        if not self._loaded:
            return self._deny(intent, ["gate_not_ready: persisted risk state not loaded yet (await gate.load())"])
        if self._persist_error is not None:
            self._schedule_persist()  # retry in the background; deny meanwhile
            return self._deny(intent, [f"risk_persistence: last write of risk state failed ({self._persist_error}); "
                                       "trading waits until it succeeds"])
        problems = self._intent_problems(intent) + self._account_problems(account)
        if problems:
            return self._deny(intent, problems)
        day = self._roll_day(account, intent)
        self._account_breakers(account)
        cfg = self.config
        reasons: list[str] = []
        cur = float(account.current_position)
        after = cur + intent.signed_qty
        reduces = cur != 0 and (intent.signed_qty > 0) != (cur > 0) and intent.qty <= abs(cur) + 1e-9
        state = self.trading_state
        if state is TradingState.HALTED:
            reasons.append(f"halted: trading state HALTED ({self._why(TradingState.HALTED)}); cancels only")
        elif state is TradingState.REDUCING and not reduces:
            reasons.append(f"reducing: trading state REDUCING ({self._why(TradingState.REDUCING)}); only orders "
                           f"that reduce the position ({cur:g}) are allowed")
        gross_before = abs(account.position_value)
        gross_after = gross_before + _added_notional(cur, after, intent.position_value)
        if not reduces:
            reasons += self._size_reasons(after, intent.position_value, gross_before, gross_after)
            limit = cfg.max_trade_loss_pct / 100.0 * account.current_equity
            if intent.sigma_loss is not None:
                loss, how = self.k_sigma * intent.sigma_loss, f" at k_sigma {self.k_sigma:g}"
            else:
                loss, how = intent.trade_loss, ""
            if loss > limit:
                reasons.append(f"single_trade_loss: estimated loss {loss:,.2f}{how} exceeds "
                               f"{cfg.max_trade_loss_pct:g}% of equity ({limit:,.2f})")
        band = abs(intent.limit_price - intent.mid_price) / intent.mid_price * 10_000.0
        if band > cfg.price_band_bps:
            reasons.append(f"price_band: limit {intent.limit_price:g} is {band:.1f} bps from mid "
                           f"{intent.mid_price:g} (band {cfg.price_band_bps:g} bps)")
        counted = not intent.is_reprice or cfg.reprices_count_toward_cap
        if counted and self._count.orders >= cfg.max_orders_per_day:
            reasons.append(f"daily_order_cap: {self._count.orders} orders already approved on {day} "
                           f"(max_orders_per_day {cfg.max_orders_per_day})")
        for code, name in (("position_size", BreakerName.POSITION_SIZE),
                           ("single_trade_loss", BreakerName.SINGLE_TRADE_LOSS)):
            why = [r for r in reasons if r.startswith(code + ":")]
            if why:
                self._trip(name, day, why[0])
        if reasons:
            self._schedule_persist()
            return self._deny(intent, reasons)
        self._count = OrderCount(day, self._count.orders + (1 if counted else 0),
                                 self._count.reprices + (1 if intent.is_reprice else 0))
        self._dirty_counts[day] = self._count
        self._schedule_persist()
        warnings = ("daily_pnl_stale",) if account.stale else ()
        approval = _issue_approval(intent, self.trading_state, day, warnings)
        log.info("risk.approved", order_ref=intent.order_ref, direction=intent.direction, qty=intent.qty,
                 limit=intent.limit_price, reprice=intent.is_reprice, reduces=reduces,
                 orders_today=self._count.orders, trading_state=approval.trading_state.value,
                 warnings=list(warnings))
        return approval

    async def check_durable(self, intent: OrderIntent, account: AccountState) -> Approval | Denial:
        """``check``, then wait until the state it changed is committed (a failed write: Denial)."""
        decision = self.check(intent, account)
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - fail closed
            return self._deny(intent, [f"risk_persistence: could not persist risk state ({exc})"])
        return decision

    async def flush(self) -> None:
        """Wait for (or do) the write of every pending change; raises if it fails."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        if self._dirty():
            await self._persist_once()

    async def close(self) -> None:
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - logged in _persist_once
            pass

    # ------------------------------------------------------------------ internals

    def _size_reasons(self, after: float, value_after: float, gross_before: float, gross_after: float) -> list[str]:
        """Denials of an increasing order by the size caps; during drawdown re-entry the caps are
        scaled, and an order within the full cap but past the scaled one is ``reentry_size``
        (denied, without tripping the position-size breaker)."""
        cfg, frac = self.config, self.size_fraction
        out: list[str] = []
        checks = (
            (abs(after), float(cfg.max_contracts), f"position after order {after:g} contracts", "max_contracts", "g"),
            (abs(value_after), cfg.max_position_value, f"notional after order {value_after:,.2f}",
             "max_position_value", ",.2f"),
        )
        for value, cap, what, setting, fmt in checks:
            if value > cap:
                out.append(f"position_size: {what} exceeds {setting} {cap:{fmt}}")
            elif value > cap * frac:
                out.append(f"reentry_size: {what} exceeds {frac:g} x {setting} ({cap * frac:{fmt}}) while the "
                           "drawdown breaker is in re-entry")
        if gross_after > gross_before:
            cap = cfg.max_gross_exposure
            what = f"account gross notional after order {gross_after:,.2f} (now {gross_before:,.2f})"
            if gross_after > cap:
                out.append(f"gross_exposure: {what} exceeds max_gross_exposure {cap:,.2f}")
            elif gross_after > cap * frac:
                out.append(f"reentry_size: {what} exceeds {frac:g} x max_gross_exposure ({cap * frac:,.2f}) "
                           "while the drawdown breaker is in re-entry")
        return out

    def _roll_day(self, account: AccountState, intent: OrderIntent | None) -> dt.date:
        day = account.trading_date or (intent.trading_date if intent is not None else None) or self._date \
            or self._today()
        if self._date is None or day > self._date:
            self.on_new_trading_day(day)
        elif day < self._date:
            log.warning("risk.trading_date_behind", given=str(day), current=str(self._date))
        assert self._date is not None
        if self._count.trading_date != self._date:
            self._count = OrderCount(self._date)
        return self._date

    def _account_breakers(self, account: AccountState) -> None:
        cfg, day = self.config, self._date
        assert day is not None
        if account.stale:
            if not self._stale:
                log.warning("risk.daily_pnl_stale", daily_pnl=account.daily_pnl, trading_date=str(day))
            self._stale = True
        else:
            self._stale = False
            opening = account.current_equity - account.daily_pnl
            if account.daily_pnl < 0 and opening > 0 and -account.daily_pnl >= cfg.max_daily_loss_pct / 100.0 * opening:
                self._trip(BreakerName.DAILY_LOSS, day,
                           f"daily_loss: {account.daily_pnl:,.2f} is {-account.daily_pnl / opening * 100:.2f}% of "
                           f"opening equity {opening:,.2f} (limit {cfg.max_daily_loss_pct:g}%)")
        peak = max(account.peak_equity, account.current_equity)
        if peak > 0:
            self._drawdown_breaker(day, (peak - account.current_equity) / peak, account.current_equity, peak)

    def _drawdown_breaker(self, day: dt.date, dd: float, equity: float, peak: float) -> None:
        """Trip at the limit. Once tripped (in TRIGGERED, COOLDOWN or re-entry) the same drawdown
        does not trip it again, so its cooldown can run out: only a drawdown past the trip level
        plus the margin does. Re-entry ends once the drawdown is back under the limit. Each
        change is announced (logged and published as a breaker transition)."""
        cfg, name = self.config, BreakerName.DRAWDOWN
        limit = cfg.max_drawdown_pct / 100.0
        where = f"equity {equity:,.2f} is {dd * 100:.2f}% below peak {peak:,.2f}"
        reentry = self._board.in_reentry(name)
        if reentry or self._board.phase(name) is not BreakerPhase.ACTIVE:
            level = max(limit, self._board.trip_level(name) or limit)
            retrip = level + cfg.drawdown_retrip_margin_pct / 100.0
            if reentry and dd < limit:
                t = self._board.end_reentry(name, day, f"drawdown: recovered, {where} (limit "
                                                       f"{cfg.max_drawdown_pct:g}%): full size again")
                self._announce([t] if t is not None else [])
            elif dd > retrip:
                self._trip(name, day, f"drawdown: worsened after its trip, {where} (tripped at "
                                      f"{level * 100:.2f}%, trips again beyond {retrip * 100:.2f}%) {level_tag(dd)}")
        elif dd >= limit:
            self._trip(name, day, f"drawdown: {where} (limit {cfg.max_drawdown_pct:g}%) {level_tag(dd)}")

    def _trip(self, name: BreakerName, day: dt.date, reason: str) -> None:
        t = self._board.trip(name, day, reason)
        if t is not None:
            self._announce([t])

    def _why(self, state: TradingState) -> str:
        names = [n.value for n in BreakerName if STATE_MAP[n][self._board.phase(n)] is state]
        return ", ".join(f"{n} {self._board.phase(BreakerName(n)).value}" for n in names)

    def _announce(self, transitions: list[BreakerTransition]) -> None:
        for t in transitions:
            log.warning("risk.breaker_transition", breaker=t.name.value, old=t.old.value, new=t.new.value,
                        trading_date=str(t.trading_date), reason=t.reason, trading_state=t.trading_state.value)
            for listener in self._listeners:
                try:
                    listener(t)
                except Exception:  # noqa: BLE001 - a listener must not break the gate
                    log.exception("risk.listener_failed", breaker=t.name.value)

    @staticmethod
    def _intent_problems(i: OrderIntent) -> list[str]:
        out = []
        for name in ("limit_price", "mid_price"):
            v = getattr(i, name)
            if not _finite(v) or v <= 0:
                out.append(f"bad_input: {name}={v!r} must be a finite price > 0")
        if not _finite(i.position_value):
            out.append(f"bad_input: position_value={i.position_value!r} must be a finite amount")
        if not _finite(i.trade_loss) or i.trade_loss < 0:
            out.append(f"bad_input: trade_loss={i.trade_loss!r} must be a finite amount >= 0")
        if i.sigma_loss is not None and (not _finite(i.sigma_loss) or i.sigma_loss < 0):
            out.append(f"bad_input: sigma_loss={i.sigma_loss!r} must be a finite amount >= 0")
        return out

    @staticmethod
    def _account_problems(a: AccountState) -> list[str]:
        out = []
        if not _finite(a.daily_pnl):
            out.append(f"bad_input: daily_pnl={a.daily_pnl!r} must be a finite amount")
        if not _finite(a.current_equity) or a.current_equity <= 0:
            out.append(f"bad_input: current_equity={a.current_equity!r} must be a finite amount > 0")
        if not _finite(a.peak_equity) or a.peak_equity < 0:
            out.append(f"bad_input: peak_equity={a.peak_equity!r} must be a finite amount >= 0")
        if not _finite(a.position_value):
            out.append(f"bad_input: position_value={a.position_value!r} must be a finite amount")
        if not _finite(a.current_position):
            out.append(f"bad_input: current_position={a.current_position!r} must be a finite number of contracts")
        return out

    def _deny(self, intent: OrderIntent, reasons: list[str]) -> Denial:
        log.warning("risk.denied", order_ref=intent.order_ref, direction=intent.direction, qty=intent.qty,
                    reasons=reasons, trading_state=self.trading_state.value)
        return Denial(tuple(reasons), intent, self.trading_state)

    def _dirty(self) -> bool:
        return bool(self._dirty_counts) or bool(self._board._dirty)  # noqa: SLF001 - same package

    def _schedule_persist(self) -> None:
        if self._repo is None or not self._dirty():
            return
        if self._writer is not None and not self._writer.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next flush() writes it
        self._writer = loop.create_task(self._write_loop(), name="risk-gate-persist")

    async def _write_loop(self) -> None:
        while self._dirty():
            try:
                await self._persist_once()
            except Exception:  # noqa: BLE001 - recorded; the gate now fails closed
                return

    async def _persist_once(self) -> None:
        if self._repo is None:
            self._board.take_dirty()
            self._dirty_counts.clear()
            return
        recs = self._board.take_dirty()
        counts, self._dirty_counts = self._dirty_counts, {}
        try:
            await self._repo.save(recs, list(counts.values()))
        except Exception as exc:
            self._board.mark_dirty(recs)
            self._dirty_counts = {**counts, **self._dirty_counts}
            self._persist_error = f"{type(exc).__name__}: {exc}"
            log.error("risk.persist_failed", error=self._persist_error)
            raise
        if self._persist_error is not None:
            log.info("risk.persist_recovered")
        self._persist_error = None
