"""Plain records the broker layer hands to the rest of the engine.

They copy what matters out of ib_async's mutable objects, so callers never hold a reference that
ib_async may reset on a disconnect. Money is in the account currency unless a field says otherwise;
prices are per unit (not multiplied); quantities are contracts, signed (+long, -short).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

DataType = Literal["live", "delayed"]
ConnectionState = Literal["disconnected", "connecting", "connected", "degraded", "stopped"]


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Account summary at one instant; ``daily_pnl`` and ``peak_equity`` come from our own marks."""

    account: str
    currency: str
    net_liquidation: float
    total_cash: float
    gross_position_value: float
    """IB's GrossPositionValue: stocks and options only, 0 for futures. Futures exposure is
    positions x multiplier x mark (``execution.targets.position_notional``)."""
    available_funds: float
    at: dt.datetime
    """When the gateway reported it (UTC)."""
    daily_pnl: float | None = None
    """Net liquidation minus the previous trading date's closing mark; None when no mark yet."""
    peak_equity: float | None = None
    """Persisted high-water mark of net liquidation; None when the caller keeps none."""
    daily_pnl_stale: bool = False
    """The previous mark is more than one trading day old: do not trip the daily-loss breaker."""


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """One futures position as the gateway reports it."""

    account: str
    con_id: int
    symbol: str
    local_symbol: str
    contract_month: str
    """``YYYYMM`` (or ``YYYYMMDD`` as the gateway sends it)."""
    quantity: float
    """Signed contracts."""
    avg_cost: float
    """IB's average cost per contract (futures: price times multiplier)."""
    multiplier: float


@dataclass(frozen=True, slots=True)
class QuoteSnapshot:
    """Top of book for one contract; ``data_type`` says whether it was live or delayed."""

    con_id: int
    symbol: str
    bid: float
    ask: float
    last: float | None
    at: dt.datetime
    data_type: DataType
    min_tick: float | None = None

    @property
    def mid(self) -> float:
        """Mid price (per unit)."""
        return (self.bid + self.ask) / 2.0

    @property
    def spread(self) -> float:
        """Ask minus bid (per unit)."""
        return self.ask - self.bid


@dataclass(frozen=True, slots=True)
class BarRecord:
    """One completed daily session bar (``date`` is the trade date it closes on)."""

    date: dt.date
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class BrokerNotice:
    """A gateway message worth surfacing (farm status, connectivity, pacing, order errors)."""

    code: int
    req_id: int
    message: str
    at: dt.datetime
    kind: str
    """``connectivity``, ``farm``, ``pacing``, ``order``, ``client_id`` or ``other``."""


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One execution joined with its commission report (exactly one per ``exec_id``)."""

    exec_id: str
    order_id: int
    perm_id: int
    order_ref: str
    con_id: int
    symbol: str
    local_symbol: str
    contract_month: str
    side: Literal["BUY", "SELL"]
    qty: float
    """Contracts in this execution (unsigned)."""
    price: float
    time: dt.datetime
    commission: float | None
    """Account currency; None when the commission report never arrived."""
    live: bool
    """True when it arrived as it happened; False when recovered by ``reqExecutions``."""


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one reconciliation on connect found."""

    at: dt.datetime
    open_orders: int
    executions_seen: int
    executions_new: int
    rebound_orders: tuple[str, ...] = ()
    """orderRefs of our working orders rebound to fresh ib_async ``Trade`` objects."""
    unexplained_positions: tuple[str, ...] = ()
    """Human-readable position mismatches against the journal."""
    complete: bool = True
    """False when any report was missing: state is unknown and trading waits."""
    errors: tuple[str, ...] = field(default=())
