"""Records that cross the risk gate: what an order wants, the account it meets, and the verdict.

Only ``RiskGate`` can mint an ``Approval``: its constructor demands a module-private token that
the gate passes through ``_issue_approval``. An Approval is bound to exactly one ``OrderIntent``
and ``consume()`` works once, so ``BrokerGateway.place_order`` can accept nothing else and never
the same approval twice. Money is in account currency; prices are quote-currency per unit (not
multiplied); quantities are contracts.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["BUY", "SELL"]


class TradingState(enum.StrEnum):
    """What the gate lets through: everything, only position-reducing orders, or nothing.

    HALTED still allows cancels: cancels never pass the gate.
    """

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def most_severe(states: list[TradingState] | tuple[TradingState, ...]) -> TradingState:
    """The strictest of ``states`` (ACTIVE when empty)."""
    return max(states, key=lambda s: s.severity, default=TradingState.ACTIVE)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One order (or one reprice) the order manager wants to send.

    ``position_value`` is the signed notional AFTER the order in its market (account currency);
    ``sigma_loss`` the order's loss on a one-sigma adverse day (daily sigma x multiplier x qty),
    which the gate multiplies by its ``k_sigma`` (the one ``execution.k_sigma``); ``trade_loss``
    is the caller's own k-sigma figure, used only when ``sigma_loss`` is None. ``reduces_position``
    is the caller's claim; the gate re-derives it from the account's ``current_position``. Prices
    are validated by the gate (a NaN or negative price is a Denial, not an exception); only a
    direction or quantity that cannot describe an order raises here.
    """

    market: str
    con_id: int
    local_symbol: str
    direction: Direction
    qty: int
    """Contracts (> 0); for a reprice, the quantity still working."""
    limit_price: float
    mid_price: float
    """Mid at the time of the check (the price band is measured around it)."""
    order_ref: str
    is_reprice: bool = False
    reduces_position: bool = False
    position_value: float = 0.0
    trade_loss: float = 0.0
    sigma_loss: float | None = None
    adv: float | None = None
    """Average daily volume in contracts, when the caller knows it (informational)."""
    trading_date: dt.date | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("BUY", "SELL"):
            raise ValueError(f"OrderIntent.direction={self.direction!r}: must be 'BUY' or 'SELL'")
        if isinstance(self.qty, bool) or not isinstance(self.qty, int) or self.qty <= 0:
            raise ValueError(f"OrderIntent.qty={self.qty!r}: must be a whole number of contracts >= 1")

    @property
    def signed_qty(self) -> int:
        return self.qty if self.direction == "BUY" else -self.qty


@dataclass(frozen=True, slots=True)
class AccountState:
    """The account as the gate sees it for one check (account currency).

    ``daily_pnl`` is net liquidation minus the previous trading date's closing mark; ``stale`` says
    that mark is more than one trading day old (then the daily-loss breaker is not evaluated, and
    the approval carries a ``daily_pnl_stale`` warning). ``peak_equity`` is the persisted peak.
    ``position_value`` is the account-wide gross notional before the order (sum over all markets
    of |contracts x multiplier x mark|), checked with the order's addition against
    ``max_gross_exposure``.
    ``current_position`` is the signed contracts held before the order. ``trading_date`` None
    means "the gate's current trading date".
    """

    daily_pnl: float
    current_equity: float
    peak_equity: float
    position_value: float = 0.0
    current_position: float = 0.0
    stale: bool = False
    trading_date: dt.date | None = None


class ApprovalError(RuntimeError):
    """An Approval was forged, or used more than once."""


_GATE_TOKEN = object()
_serial = itertools.count(1)


@dataclass(frozen=True, slots=True, eq=False)
class Approval:
    """Permission to send exactly ``intent``, once. Only ``RiskGate`` creates these; frozen, so
    the intent it is bound to cannot be swapped afterwards."""

    intent: OrderIntent
    trading_state: TradingState
    trading_date: dt.date
    warnings: tuple[str, ...] = ()
    serial: int = 0
    _token: object = field(default=None, repr=False)
    _used: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self._token is not _GATE_TOKEN:
            raise ApprovalError("an Approval can only be created by RiskGate.check")
        object.__setattr__(self, "_token", None)

    @property
    def used(self) -> bool:
        return self._used

    def consume(self) -> OrderIntent:
        """Mark this approval used and return its intent; a second call raises ApprovalError."""
        if self._used:
            raise ApprovalError(f"approval #{self.serial} for order {self.intent.order_ref} was already used")
        object.__setattr__(self, "_used", True)
        return self.intent

    def covers(self, intent: OrderIntent) -> bool:
        """True when ``intent`` is the very order this approval was issued for."""
        return intent == self.intent


def _issue_approval(
    intent: OrderIntent, state: TradingState, trading_date: dt.date, warnings: tuple[str, ...] = ()
) -> Approval:
    """The gate's private mint (not part of the public API)."""
    return Approval(intent, state, trading_date, warnings, next(_serial), _GATE_TOKEN)


@dataclass(frozen=True, slots=True)
class Denial:
    """The gate said no; each reason starts with a short code (``price_band: ...``)."""

    reasons: tuple[str, ...]
    intent: OrderIntent | None = None
    trading_state: TradingState = TradingState.ACTIVE

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a Denial needs at least one reason")

    @property
    def codes(self) -> tuple[str, ...]:
        """The reason codes (text before the first colon)."""
        return tuple(r.split(":", 1)[0] for r in self.reasons)
