"""The order book: validation, working orders and their lifecycle, fills from the market side.

IB's lifecycle as a client sees it: PreSubmitted outside the session, Submitted inside it, partial
fills, Filled; Cancelled on request or when a DAY order reaches its session close; Inactive when
rejected. The book is pure bookkeeping (no sockets): it returns ``BookEvent``s that the exchange
turns into wire messages, so it can be tested and persisted on its own.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

import structlog

from .account import Account
from .datafeed import DataFeed, Resolved
from .requests import PlaceOrder

log = structlog.get_logger(__name__)

ACTIVE = ("PreSubmitted", "Submitted")
_TIME_FIELDS = ("placed_at", "matched_until", "expires_at", "done_at")
DONE = ("Filled", "Cancelled", "Inactive")


@dataclass(slots=True)
class WorkingOrder:
    """One order the exchange knows (mutable book entry; persisted as a dict)."""

    client_id: int
    order_id: int
    perm_id: int
    account: str
    con_id: int
    symbol: str
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None
    tif: str
    order_ref: str
    placed_at: dt.datetime
    matched_until: dt.datetime
    expires_at: dt.datetime | None
    status: str = "PreSubmitted"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    done_at: dt.datetime | None = None
    """When it was filled, cancelled or rejected (simulated time)."""

    @property
    def remaining(self) -> float:
        return max(self.total_qty - self.filled, 0.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in _TIME_FIELDS:
            d[k] = d[k].isoformat() if d[k] else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "WorkingOrder":
        kw = dict(d)
        for k in _TIME_FIELDS:
            kw[k] = dt.datetime.fromisoformat(kw[k]) if kw.get(k) else None
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Execution:
    """One (partial) fill as booked: what EXECUTION_DATA and COMMISSION_REPORT report."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    account: str
    con_id: int
    time: dt.datetime
    side: str
    """``BOT`` or ``SLD``."""
    qty: float
    price: float
    cum_qty: float
    avg_price: float
    order_ref: str
    commission: float
    realized_pnl: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time"] = self.time.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Execution":
        kw = dict(d)
        kw["time"] = dt.datetime.fromisoformat(kw["time"])
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class BookEvent:
    """Something a client must hear about: ``kind`` is status, fill or error."""

    kind: str
    order: WorkingOrder
    execution: Execution | None = None
    code: int = 0
    text: str = ""


@dataclass(slots=True)
class PlaceOutcome:
    events: list[BookEvent] = field(default_factory=list)
    error: tuple[int, str] | None = None
    """(code, text) when the request is refused without creating an order."""


def on_tick(price: float, tick: float) -> bool:
    n = round(price / tick)
    return math.isclose(n * tick, price, rel_tol=0.0, abs_tol=max(1e-9, abs(price) * 1e-12))


class OrderBook:
    """Working and finished orders of every client, keyed by (client_id, order_id)."""

    def __init__(self, feed: DataFeed, accounts: Mapping[str, Account], exec_prefix: str = "00000001") -> None:
        self.feed = feed
        self.accounts = accounts
        self.orders: dict[tuple[int, int], WorkingOrder] = {}
        self.executions: list[Execution] = []
        self.next_perm_id = 1_000_001
        self.exec_seq = 0
        self.exec_prefix = exec_prefix
        self.max_order_id: dict[int, int] = {}

    # ----- queries --------------------------------------------------------------------------
    def working(self) -> list[WorkingOrder]:
        return [o for o in self.orders.values() if o.status in ACTIVE]

    def next_valid_id(self, client_id: int) -> int:
        return self.max_order_id.get(client_id, 0) + 1

    def prune(self, horizon: dt.datetime) -> None:
        """Forget executions before ``horizon`` and orders finished before it (never replayed)."""
        if self.executions and self.executions[0].time < horizon:
            self.executions = [e for e in self.executions if e.time >= horizon]
        done = [k for k, o in self.orders.items() if o.status not in ACTIVE and o.matched_until < horizon]
        for k in done:
            del self.orders[k]

    # ----- placing --------------------------------------------------------------------------
    def place(self, client_id: int, req: PlaceOrder, resolved: list[Resolved], now: dt.datetime,
              default_account: str, force_reject: str | None = None) -> PlaceOutcome:  # fmt: skip
        """New order or modification of a working one (same client and order id)."""
        key = (client_id, req.order_id)
        existing = self.orders.get(key)
        self.max_order_id[client_id] = max(self.max_order_id.get(client_id, 0), req.order_id)
        if existing is not None:
            return self._modify(existing, req, now)
        if not resolved:
            return PlaceOutcome(error=(200, "No security definition has been found for the request"))
        r = resolved[0]
        account = req.account or default_account
        order = WorkingOrder(
            client_id, req.order_id, self._perm(), account, r.month.con_id, r.spec.symbol,
            req.action.upper(), req.total_qty, req.order_type.upper(), req.lmt_price,
            (req.tif or "DAY").upper(), req.order_ref, now, now, None,
        )  # fmt: skip
        reason = force_reject or self._validate(req, r, account, now)
        if reason is None and len(resolved) > 1:
            reason = "The contract description is ambiguous; specify the contract month"
        if reason is None and order.lmt_price is not None and order.order_type == "LMT" and not on_tick(order.lmt_price, r.spec.min_tick):
            self.orders[key] = order
            order.status, order.done_at = "Cancelled", now
            return PlaceOutcome(events=[BookEvent("error", order, code=110, text=(
                "The price does not conform to the minimum price variation for this contract."))])  # fmt: skip
        if reason is not None:
            order.status, order.done_at = "Inactive", now
            self.orders[key] = order
            log.info("sim_order_rejected", client_id=client_id, order_id=req.order_id, reason=reason)
            return PlaceOutcome(events=[  # the error first, so ib_async logs the reason on the trade
                BookEvent("error", order, code=201, text=f"Order rejected - reason:{reason}"),
                BookEvent("status", order),
            ])  # fmt: skip
        session = self.feed.session_at(r.spec.symbol, now)
        if order.tif == "DAY":
            nxt = session or self.feed.current_or_next_session(r.spec.symbol, now)
            order.expires_at = nxt[1] if nxt else now
        order.status = "Submitted" if session else "PreSubmitted"
        self.orders[key] = order
        log.debug("sim_order_accepted", client_id=client_id, order_id=req.order_id, status=order.status)
        return PlaceOutcome(events=[BookEvent("status", order)])

    def _perm(self) -> int:
        p = self.next_perm_id
        self.next_perm_id += 1
        return p

    def _validate(self, req: PlaceOrder, r: Resolved, account: str, now: dt.datetime) -> str | None:
        spec = r.spec
        if req.unsupported:
            return f"The simulator does not support {req.unsupported}"
        if req.what_if:
            return "What-if orders are not simulated"
        if r.sec_type == "CONTFUT":
            return "CONTFUT is for historical data only; order a contract month (secType FUT)"
        if account not in self.accounts:
            return f"Account {account!r} is not managed by this login"
        if req.action.upper() not in ("BUY", "SELL"):
            return f"Invalid action {req.action!r}; expected BUY or SELL"
        if req.order_type.upper() not in ("LMT", "MKT"):
            return f"Order type {req.order_type!r} is not supported by the simulator (LMT, MKT)"
        if (req.tif or "DAY").upper() not in ("DAY", "GTC"):
            return f"Time in force {req.tif!r} is not supported (DAY, GTC)"
        if req.total_qty <= 0 or not float(req.total_qty).is_integer():
            return f"Order size {req.total_qty:g} must be a whole number of contracts >= 1"
        if req.total_qty > spec.max_order_size:
            return f"The order size {req.total_qty:g} exceeds the maximum order size of {spec.max_order_size} for {spec.symbol}"
        if req.order_type.upper() == "LMT" and (req.lmt_price is None or req.lmt_price <= 0):
            return "A limit order needs a positive limit price"
        if r.month.last_trade_date < self.feed.trade_date(spec.symbol, now):
            return f"Contract {r.month.local_symbol} expired on {r.month.last_trade_date.isoformat()}"
        return None

    def _modify(self, o: WorkingOrder, req: PlaceOrder, now: dt.datetime) -> PlaceOutcome:
        if o.status == "Filled":
            return PlaceOutcome(error=(104, "Cannot modify a filled order."))
        if o.status not in ACTIVE:
            return PlaceOutcome(error=(103, "Duplicate order id"))
        spec = self.feed.u.spec(o.symbol)
        if req.action.upper() != o.action or req.order_type.upper() != o.order_type:
            return PlaceOutcome(events=[BookEvent("error", o, code=105, text=(
                "Order being modified does not match original order: action and order type cannot change."))])  # fmt: skip
        if req.total_qty < o.filled or req.total_qty <= 0 or (spec and req.total_qty > spec.max_order_size):
            return PlaceOutcome(events=[BookEvent("error", o, code=201, text=(
                f"Order rejected - reason:Modified size {req.total_qty:g} is invalid (filled {o.filled:g})"))])  # fmt: skip
        if o.order_type == "LMT" and (req.lmt_price is None or (spec and not on_tick(req.lmt_price, spec.min_tick))):
            return PlaceOutcome(events=[BookEvent("error", o, code=110, text=(
                "The price does not conform to the minimum price variation for this contract."))])  # fmt: skip
        o.total_qty = req.total_qty
        o.lmt_price = req.lmt_price
        o.order_ref = req.order_ref or o.order_ref
        if (req.tif or "DAY").upper() != o.tif:
            o.tif = (req.tif or "DAY").upper()
            nxt = self.feed.current_or_next_session(o.symbol, now)
            o.expires_at = (nxt[1] if nxt else now) if o.tif == "DAY" else None
        o.matched_until = max(o.matched_until, now)
        if o.remaining <= 0:
            o.status, o.done_at = "Filled", now
        return PlaceOutcome(events=[BookEvent("status", o)])

    # ----- cancelling -----------------------------------------------------------------------
    def cancel(self, client_id: int, order_id: int, now: dt.datetime | None = None) -> PlaceOutcome:
        o = self.orders.get((client_id, order_id))
        if o is None:
            return PlaceOutcome(error=(10147, f"OrderId {order_id} that needs to be cancelled is not found."))
        if o.status not in ACTIVE:
            return PlaceOutcome(events=[BookEvent("error", o, code=10148, text=(
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {o.status}."))])  # fmt: skip
        o.status, o.done_at = "Cancelled", now or o.matched_until
        return PlaceOutcome(events=[BookEvent("status", o), BookEvent("error", o, code=202, text="Order Canceled - reason:")])

    # ----- playing time ---------------------------------------------------------------------
    def advance(self, t0: dt.datetime, t1: dt.datetime, hold_fills: bool = False) -> list[BookEvent]:
        """Play (t0, t1]: session opens, fills in time order, DAY expiries. Returns the events."""
        events: list[BookEvent] = []
        pending: list[tuple[dt.datetime, int, WorkingOrder, int, float]] = []
        seq = 0
        for o in self.working():
            start = max(o.matched_until, t0)
            end = t1 if o.expires_at is None else min(t1, o.expires_at)
            if end <= start:
                continue
            remaining = o.remaining
            for s_open, s_close in self.feed.sessions_between(o.symbol, start, end):
                a, b = max(s_open, start), min(s_close, end)
                if b <= a or remaining <= 0:
                    continue
                limit = o.lmt_price if o.order_type == "LMT" else None
                fills = self.feed.u.match(o.con_id, o.action, int(remaining), limit, a, b)  # type: ignore[arg-type]
                for f in fills:
                    q = min(float(f.qty), remaining)
                    if q <= 0:
                        continue
                    remaining -= q
                    pending.append((f.time, seq, o, int(q), f.price))
                    seq += 1
            o.matched_until = end
        pending.sort(key=lambda x: (x[0], x[1]))
        opened: set[tuple[int, int]] = set()
        for t, _, o, q, price in pending:
            if o.status == "PreSubmitted" and (o.client_id, o.order_id) not in opened:
                o.status = "Submitted"
                opened.add((o.client_id, o.order_id))
                events.append(BookEvent("status", o))
            events.append(self._fill(o, t, q, price))
        for o in self.working():
            month = self.feed.u.month(o.con_id)
            expired_contract = month is not None and month.last_trade_date < self.feed.trade_date(o.symbol, t1)
            if (o.expires_at is not None and t1 >= o.expires_at) or expired_contract:
                o.status = "Cancelled"
                o.done_at = min(o.expires_at, t1) if o.expires_at is not None else t1
                log.debug("sim_order_expired", client_id=o.client_id, order_id=o.order_id,
                          contract_expired=expired_contract)  # fmt: skip
                events.append(BookEvent("status", o))
                continue
            in_session = self.feed.session_at(o.symbol, t1) is not None
            if o.status == "PreSubmitted" and in_session:
                o.status = "Submitted"
                events.append(BookEvent("status", o))
            elif o.status == "Submitted" and not in_session:
                o.status = "PreSubmitted"  # a GTC order waiting for the next session, as IB shows it
                events.append(BookEvent("status", o))
        return events

    def fill_now(self, o: WorkingOrder, t: dt.datetime, price: float) -> BookEvent:
        """Fill the whole remainder at ``price`` (the fault injector's fill racing a cancel)."""
        return self._fill(o, t, int(o.remaining), price)

    def _fill(self, o: WorkingOrder, t: dt.datetime, qty: int, price: float) -> BookEvent:
        acct = self.accounts[o.account]
        spec = self.feed.u.spec(o.symbol)
        mult = spec.multiplier if spec else 1.0
        booked = acct.apply_fill(o.con_id, o.action, qty, price, mult)
        new_filled = o.filled + qty
        o.avg_fill_price = (o.avg_fill_price * o.filled + price * qty) / new_filled
        o.filled = new_filled
        o.last_fill_price = price
        if o.remaining <= 0:
            o.status, o.done_at = "Filled", t
        self.exec_seq += 1
        ex = Execution(
            f"{self.exec_prefix}.{self.exec_seq:08x}.01.01", o.order_id,
            o.client_id, o.perm_id, o.account, o.con_id, t, "BOT" if o.action == "BUY" else "SLD",
            float(qty), price, o.filled, round(o.avg_fill_price, 10), o.order_ref,
            booked.commission, booked.realized_pnl,
        )  # fmt: skip
        self.executions.append(ex)
        return BookEvent("fill", o, ex)
