"""The four circuit breakers and how their phases map onto the trading state.

Each breaker cycles ACTIVE -> TRIGGERED -> COOLDOWN -> ACTIVE. It trips (to TRIGGERED) on the
trading date its condition is breached; the first new trading date after that moves it to
COOLDOWN with ``cooldown_days`` remaining; each further trading date takes one off, and at zero it
is ACTIVE again (so a breaker with N cooldown days is in COOLDOWN for exactly N trading days; with
0 it goes straight back to ACTIVE on the next day). A breach while in COOLDOWN trips it again and
restarts the count. Trading dates come from the caller (``on_new_trading_day``) and are counted
on the exchange calendar the board is given (``is_trading_day``; weekdays only without one), so
an exchange holiday is never a cooldown day: this module never reads a clock.

Drawdown re-entry: a drawdown does not heal by waiting (a flat account's equity stays where it
is), so when the drawdown breaker's cooldown ends it comes back ACTIVE in *re-entry*: orders at
a reduced size (the gate's ``reentry_size_fraction``), no new trip on the same, unchanged
drawdown. The level it tripped at is kept in its reason (``[level 0.112345]``, so it survives a
restart in the existing record); the gate trips it again only when the drawdown worsens beyond
that level plus a margin, and ends re-entry when the drawdown is back under the limit.

What each phase allows (the trading state is the strictest over all four breakers)::

    breaker             condition (checked by RiskGate)                ACTIVE   TRIGGERED  COOLDOWN
    daily_loss          -daily_pnl >= max_daily_loss_pct of the day's  ACTIVE   HALTED     REDUCING
                        opening equity (not evaluated when P&L stale)
    drawdown            (peak - equity) / peak >= max_drawdown_pct     ACTIVE   REDUCING   REDUCING
    position_size       an increasing order would take |contracts| or  ACTIVE   REDUCING   ACTIVE
                        |notional| past its cap (that order is denied)
    single_trade_loss   an increasing order's k-sigma loss exceeds     ACTIVE   ACTIVE     ACTIVE
                        max_trade_loss_pct of equity (only that order
                        is denied; the trip is recorded)

ACTIVE: any order that passes the per-order checks. REDUCING: only orders that reduce the
current position (never flip it). HALTED: no orders at all; cancels never pass the gate, so they
stay possible.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from hydra_engine.markets import TradingCalendar, trading_days_between, weekdays
from hydra_engine.risk.intents import TradingState, most_severe
from hydra_engine.store.breakers_repo import BreakerRecord


class BreakerName(enum.StrEnum):
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    POSITION_SIZE = "position_size"
    SINGLE_TRADE_LOSS = "single_trade_loss"


class BreakerPhase(enum.StrEnum):
    ACTIVE = "ACTIVE"
    TRIGGERED = "TRIGGERED"
    COOLDOWN = "COOLDOWN"


_A, _R, _H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED

STATE_MAP: Mapping[BreakerName, Mapping[BreakerPhase, TradingState]] = {
    BreakerName.DAILY_LOSS: {BreakerPhase.ACTIVE: _A, BreakerPhase.TRIGGERED: _H, BreakerPhase.COOLDOWN: _R},
    BreakerName.DRAWDOWN: {BreakerPhase.ACTIVE: _A, BreakerPhase.TRIGGERED: _R, BreakerPhase.COOLDOWN: _R},
    BreakerName.POSITION_SIZE: {BreakerPhase.ACTIVE: _A, BreakerPhase.TRIGGERED: _R, BreakerPhase.COOLDOWN: _A},
    BreakerName.SINGLE_TRADE_LOSS: {BreakerPhase.ACTIVE: _A, BreakerPhase.TRIGGERED: _A, BreakerPhase.COOLDOWN: _A},
}
"""The explicit breaker-phase -> trading-state table (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """One breaker changed phase (for logs, events and the TUI)."""

    name: BreakerName
    old: BreakerPhase
    new: BreakerPhase
    trading_date: dt.date
    reason: str
    trading_state: TradingState
    """The overall trading state after this change."""

    @property
    def tripped(self) -> bool:
        return self.new is BreakerPhase.TRIGGERED


REENTRY_BREAKERS = frozenset({BreakerName.DRAWDOWN})
"""Breakers that come back from cooldown in re-entry (see the module docstring)."""
REENTRY_PREFIX = "reentry:"
_LEVEL = re.compile(r"\[level (\d+(?:\.\d+)?)\]")


def level_tag(level: float) -> str:
    """The machine-readable trip level carried in a breaker's reason (a fraction, 0.1 is 10 %)."""
    return f"[level {max(0.0, level):.6f}]"


def level_of(reason: str) -> float | None:
    """The trip level in ``reason`` (``level_tag``), None when it carries none."""
    m = _LEVEL.search(reason or "")
    return float(m.group(1)) if m else None


class BreakerBoard:
    """The four breakers' phases in memory; pure logic, persisted by the gate through the repo."""

    def __init__(self, cooldown_days: Mapping[BreakerName, int],
                 records: Iterable[BreakerRecord] = (), *,
                 is_trading_day: TradingCalendar = weekdays) -> None:
        for name in BreakerName:
            days = cooldown_days.get(name)
            if days is None or days < 0:
                raise ValueError(f"cooldown_days[{name.value}]={days!r}: must be a whole number >= 0")
        self._cooldown = {n: int(cooldown_days[n]) for n in BreakerName}
        self._recs: dict[BreakerName, BreakerRecord] = {n: BreakerRecord(n.value) for n in BreakerName}
        for rec in records:
            try:
                self._recs[BreakerName(rec.name)] = rec
            except ValueError:
                continue  # a breaker this version no longer has: ignore its row
        self._dirty: set[BreakerName] = set()
        self._is_trading_day = is_trading_day

    # ------------------------------------------------------------------ reading

    def phase(self, name: BreakerName) -> BreakerPhase:
        return BreakerPhase(self._recs[name].state)

    def record(self, name: BreakerName) -> BreakerRecord:
        return self._recs[name]

    def records(self) -> dict[BreakerName, BreakerRecord]:
        return dict(self._recs)

    def trading_state(self) -> TradingState:
        """The strictest state any breaker's phase maps to (``STATE_MAP``)."""
        return most_severe([STATE_MAP[n][self.phase(n)] for n in BreakerName])

    def in_reentry(self, name: BreakerName) -> bool:
        """ACTIVE again after its cooldown, at reduced size, its trip condition not yet cleared."""
        rec = self._recs[name]
        return rec.state == BreakerPhase.ACTIVE.value and rec.reason.startswith(REENTRY_PREFIX)

    def trip_level(self, name: BreakerName) -> float | None:
        """The level the breaker last tripped at (from its reason), None when unknown."""
        return level_of(self._recs[name].reason)

    def take_dirty(self) -> list[BreakerRecord]:
        """Records changed since the last call (for persistence)."""
        out = [self._recs[n] for n in sorted(self._dirty, key=lambda n: n.value)]
        self._dirty.clear()
        return out

    def mark_dirty(self, records: Iterable[BreakerRecord]) -> None:
        """Put records back after a failed write so the next write retries them."""
        for rec in records:
            self._dirty.add(BreakerName(rec.name))

    # ------------------------------------------------------------------ changing

    def trip(self, name: BreakerName, trading_date: dt.date, reason: str) -> BreakerTransition | None:
        """Condition breached on ``trading_date``: TRIGGERED (again), restarting the cooldown.

        Returns None when it is already TRIGGERED (the first reason of the day is kept).
        """
        rec = self._recs[name]
        old = BreakerPhase(rec.state)
        if old is BreakerPhase.TRIGGERED:
            return None
        self._set(name, replace(rec, state=BreakerPhase.TRIGGERED.value, triggered_at=trading_date,
                                cooldown_remaining=self._cooldown[name], reason=reason,
                                last_day=max(filter(None, (rec.last_day, trading_date)))))
        return BreakerTransition(name, old, BreakerPhase.TRIGGERED, trading_date, reason, self.trading_state())

    def on_new_trading_day(self, trading_date: dt.date, trading_days: int | None = None) -> list[BreakerTransition]:
        """Tick cooldowns for a new trading date (idempotent for a date already seen).

        ``trading_days`` is how many trading days passed since the breaker's last day; by default
        they are counted on the board's calendar (``trading_days_between``), so a holiday between
        two sessions is not a cooldown day and a date that is no trading day ticks nothing.
        """
        out: list[BreakerTransition] = []
        for name in BreakerName:
            rec = self._recs[name]
            if rec.last_day is not None and trading_date <= rec.last_day:
                continue
            if rec.last_day is None:
                steps = 1
            elif trading_days is not None:
                steps = max(0, int(trading_days))
            else:
                steps = trading_days_between(self._is_trading_day, rec.last_day, trading_date)
            old = BreakerPhase(rec.state)
            state, remaining = old, rec.cooldown_remaining
            for _ in range(steps):
                if state is BreakerPhase.TRIGGERED:
                    state = BreakerPhase.COOLDOWN if remaining > 0 else BreakerPhase.ACTIVE
                elif state is BreakerPhase.COOLDOWN:
                    remaining = max(0, remaining - 1)
                    if remaining == 0:
                        state = BreakerPhase.ACTIVE
                else:
                    break
            reason = rec.reason
            if state is BreakerPhase.ACTIVE:
                remaining = 0
                if old is not BreakerPhase.ACTIVE and name in REENTRY_BREAKERS:
                    level = level_of(rec.reason)
                    reason = (f"{REENTRY_PREFIX} cooldown over on {trading_date}: trading again at reduced size "
                              f"until the {name.value} is back under its limit"
                              + (f" {level_tag(level)}" if level is not None else ""))
            self._set(name, replace(rec, state=state.value, cooldown_remaining=remaining, reason=reason,
                                    last_day=trading_date))
            if state is not old:
                out.append(BreakerTransition(name, old, state, trading_date, reason, TradingState.ACTIVE))
        state_now = self.trading_state()
        return [replace(t, trading_state=state_now) for t in out]

    def end_reentry(self, name: BreakerName, trading_date: dt.date, reason: str) -> BreakerTransition | None:
        """Re-entry is over (the condition cleared): full size again; None when not in re-entry."""
        if not self.in_reentry(name):
            return None
        self._set(name, replace(self._recs[name], reason=reason))
        return BreakerTransition(name, BreakerPhase.ACTIVE, BreakerPhase.ACTIVE, trading_date, reason,
                                 self.trading_state())

    def reset(self, name: BreakerName, trading_date: dt.date | None = None) -> BreakerTransition | None:
        """Operator override: back to ACTIVE at full size now (journalled by the caller)."""
        rec = self._recs[name]
        old = BreakerPhase(rec.state)
        if old is BreakerPhase.ACTIVE:
            return self.end_reentry(name, trading_date or rec.last_day or dt.date.today(), "operator reset")
        self._set(name, replace(rec, state=BreakerPhase.ACTIVE.value, cooldown_remaining=0, reason="operator reset"))
        day = trading_date or rec.last_day or dt.date.today()
        return BreakerTransition(name, old, BreakerPhase.ACTIVE, day, "operator reset", self.trading_state())

    def _set(self, name: BreakerName, rec: BreakerRecord) -> None:
        if rec != self._recs[name]:
            self._recs[name] = rec
            self._dirty.add(name)
