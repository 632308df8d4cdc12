"""The order book: validation, working orders and their lifecycle, fills from the market side.

IB's lifecycle as a client sees it: PreSubmitted outside the session, Submitted inside it, partial
fills, Filled; Cancelled on request or when a DAY order reaches its session close (a GTD order at
its time); Inactive when rejected. An order sent with ``transmit=False`` is staged (the client hears
nothing) until an order of its bracket arrives with ``transmit=True``. What each order type does on
the path is ``order_types``; brackets and OCA groups are ``order_links``; what-if answers are
``what_if``. The book is pure bookkeeping (no sockets): it returns ``BookEvent``s that the exchange
turns into wire messages, so it can be tested and persisted on its own.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

import structlog

from .account import Account
from .datafeed import DataFeed, Resolved, parse_end
from .order_links import LinkChange, OrderLinks
from .order_types import LIMIT_PRICED, STOP_TYPES, FeedMarket, OrderAction, check_type, plan
from .requests import PlaceOrder
from .messages import WhatIfState
from .what_if import what_if

log = structlog.get_logger(__name__)

ACTIVE = ("PreSubmitted", "Submitted")
STAGED = "Staged"
"""Internal status of an order sent with ``transmit=False``: stored, never matched, never reported."""
_TIME_FIELDS = ("placed_at", "matched_until", "expires_at", "done_at")
DONE = ("Filled", "Cancelled", "Inactive")
MAX_ROUNDS = 10_000
"""Replays of one ``advance`` window after linked orders changed (bounded against a bug looping)."""


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
    aux_price: float | None = None
    """Stop price of STP / STP LMT."""
    parent_id: int = 0
    oca_group: str = ""
    oca_type: int = 0
    good_till_date: str = ""
    """As the client sent it (echoed in OPEN_ORDER); ``expires_at`` holds the parsed time."""
    triggered: bool = False
    """A stop whose trigger price has traded: it now works as MKT (STP) or LMT (STP LMT)."""
    outside_rth: bool = False
    rest_rule: int | None = None
    """The fault rule (its index in the spec) holding this order unfilled until its cancel arrives
    (``cancel_race@order=N``); None for every other order."""

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
    """``status``, ``fill``, ``error`` or ``whatif`` (the answer to a what-if order)."""
    order: WorkingOrder
    execution: Execution | None = None
    code: int = 0
    text: str = ""
    what_if: WhatIfState | None = None


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
        self.market = FeedMarket(feed)
        self.links = OrderLinks(self.orders)

    # ----- queries --------------------------------------------------------------------------
    def working(self) -> list[WorkingOrder]:
        return [o for o in self.orders.values() if o.status in ACTIVE]

    def next_valid_id(self, client_id: int) -> int:
        return self.max_order_id.get(client_id, 0) + 1

    def prune(self, horizon: dt.datetime) -> None:
        """Forget executions before ``horizon`` and orders finished before it (never replayed)."""
        if self.executions and self.executions[0].time < horizon:
            self.executions = [e for e in self.executions if e.time >= horizon]
        done = [k for k, o in self.orders.items() if o.status in DONE and o.matched_until < horizon
                and not any(c.status in ACTIVE for c in self.links.children(o))]  # fmt: skip
        for k in done:
            del self.orders[k]

    # ----- placing --------------------------------------------------------------------------
    def place(self, client_id: int, req: PlaceOrder, resolved: list[Resolved], now: dt.datetime,
              default_account: str, force_reject: str | None = None) -> PlaceOutcome:  # fmt: skip
        """New order, what-if, staged order (``transmit=False``), transmission of a staged bracket,
        or modification of a working order (same client and order id)."""
        key = (client_id, req.order_id)
        existing = self.orders.get(key)
        self.max_order_id[client_id] = max(self.max_order_id.get(client_id, 0), req.order_id)
        if existing is not None and not req.what_if and existing.status != STAGED:
            return self._modify(existing, req, now)
        if not resolved:
            return PlaceOutcome(error=(200, "No security definition has been found for the request"))
        r = resolved[0]
        account = req.account or default_account
        order = WorkingOrder(
            client_id, req.order_id, existing.perm_id if existing else 0, account, r.month.con_id, r.spec.symbol,
            req.action.upper(), req.total_qty, req.order_type.upper(), req.lmt_price,
            (req.tif or "DAY").upper(), req.order_ref, now, now, None,
            aux_price=req.aux_price, parent_id=req.parent_id, oca_group=req.oca_group, oca_type=req.oca_type,
            good_till_date=req.good_till_date, outside_rth=req.outside_rth,
        )  # fmt: skip
        reason = force_reject or self._validate(req, r, account, now)
        if reason is None and len(resolved) > 1:
            reason = "The contract description is ambiguous; specify the contract month"
        if reason is None:
            reason = self._check_parent(order)
        if reason is None and order.order_type in STOP_TYPES + LIMIT_PRICED:
            bad = [p for p in (order.lmt_price if order.order_type in LIMIT_PRICED else None,
                               order.aux_price if order.order_type in STOP_TYPES else None)
                   if p is not None and not on_tick(p, r.spec.min_tick)]  # fmt: skip
            if bad:
                if req.what_if:
                    return PlaceOutcome(events=[BookEvent("error", order, code=110, text=_OFF_TICK)])
                order.perm_id = order.perm_id or self._perm()
                self.orders[key] = order
                order.status, order.done_at = "Cancelled", now
                return PlaceOutcome(events=[BookEvent("error", order, code=110, text=_OFF_TICK),
                                            *self._link_events(self.links.after_end(order, now), now)])  # fmt: skip
        if reason is not None:
            log.info("sim_order_rejected", client_id=client_id, order_id=req.order_id, reason=reason)
            error = BookEvent("error", order, code=201, text=f"Order rejected - reason:{reason}")
            if req.what_if:
                return PlaceOutcome(events=[error])  # nothing is placed, nothing to mark Inactive
            order.perm_id = order.perm_id or self._perm()
            order.status, order.done_at = "Inactive", now
            self.orders[key] = order
            # the error first, so ib_async logs the reason on the trade
            return PlaceOutcome(events=[error, BookEvent("status", order),
                                        *self._link_events(self.links.after_end(order, now), now)])  # fmt: skip
        if req.what_if:
            return PlaceOutcome(events=[self._what_if(order, now)])
        order.perm_id = order.perm_id or self._perm()
        self.orders[key] = order
        if not req.transmit:
            order.status = STAGED
            log.debug("sim_order_staged", client_id=client_id, order_id=req.order_id, parent_id=order.parent_id)
            return PlaceOutcome()
        events: list[BookEvent] = []
        for staged in self.links.staged_family(order):
            self._activate(staged, now)
            events.append(BookEvent("status", staged))
        self._activate(order, now)
        events.append(BookEvent("status", order))
        log.debug("sim_order_accepted", client_id=client_id, order_id=req.order_id, status=order.status,
                  transmitted_with=len(events) - 1)  # fmt: skip
        return PlaceOutcome(events=events)

    def _activate(self, o: WorkingOrder, now: dt.datetime) -> None:
        """Transmit ``o`` at ``now``: PreSubmitted while held or outside the session, else Submitted;
        DAY orders expire at the close of the session they start working in."""
        o.placed_at = o.matched_until = now
        if o.tif == "GTD":
            o.expires_at = parse_end(o.good_till_date, now)
        if self.links.held(o):
            o.status = "PreSubmitted"
            if o.tif == "DAY":
                o.expires_at = None  # set when the parent fills and the child starts working
            return
        session = self.feed.session_at(o.symbol, now)
        if o.tif == "DAY":
            nxt = session or self.feed.current_or_next_session(o.symbol, now)
            o.expires_at = nxt[1] if nxt else now
        o.status = "Submitted" if session and o.tif != "OPG" else "PreSubmitted"  # OPG waits for an open

    def _perm(self) -> int:
        p = self.next_perm_id
        self.next_perm_id += 1
        return p

    def _validate(self, req: PlaceOrder, r: Resolved, account: str, now: dt.datetime) -> str | None:
        spec = r.spec
        if req.unsupported:
            return f"The simulator does not support {req.unsupported}"
        if r.sec_type == "CONTFUT":
            return "CONTFUT is for historical data only; order a contract month (secType FUT)"
        if account not in self.accounts:
            return f"Account {account!r} is not managed by this login"
        if req.action.upper() not in ("BUY", "SELL"):
            return f"Invalid action {req.action!r}; expected BUY or SELL"
        otype, tif = req.order_type.upper(), (req.tif or "DAY").upper()
        why = check_type(otype, tif, req.lmt_price, req.aux_price, req.good_till_date, self.market.has_paths)
        if why is not None:
            return why
        if req.total_qty <= 0 or not float(req.total_qty).is_integer():
            return f"Order size {req.total_qty:g} must be a whole number of contracts >= 1"
        if req.total_qty > spec.max_order_size:
            return f"The order size {req.total_qty:g} exceeds the maximum order size of {spec.max_order_size} for {spec.symbol}"
        if tif == "GTD":
            try:
                until = parse_end(req.good_till_date, now)
            except (ValueError, KeyError):
                return (f"goodTillDate {req.good_till_date!r} is not 'YYYYMMDD HH:MM:SS [zone]' or "
                        "'YYYYMMDD-HH:MM:SS' (UTC)")  # fmt: skip
            if until <= now:
                return f"goodTillDate {req.good_till_date!r} is in the past"
        if r.month.last_trade_date < self.feed.trade_date(spec.symbol, now):
            return f"Contract {r.month.local_symbol} expired on {r.month.last_trade_date.isoformat()}"
        return None

    def _check_parent(self, o: WorkingOrder) -> str | None:
        if not o.parent_id:
            return None
        if o.parent_id == o.order_id:
            return "An order cannot be its own parent"
        p = self.links.parent(o)
        if p is None:
            return f"Parent order {o.parent_id} is not found"
        if p.status in ("Cancelled", "Inactive"):
            return f"Parent order {o.parent_id} is {p.status.lower()}"
        if p.con_id != o.con_id:
            return "A child order must be for the parent's contract"
        return None

    def _what_if(self, o: WorkingOrder, now: dt.datetime) -> BookEvent:
        acct = self.accounts[o.account]
        spec = self.feed.u.spec(o.symbol)
        mult = spec.multiplier if spec else 1.0
        marks = {p.con_id: m for p in acct.open_positions() if (m := self.feed.mark(p.con_id, now)) is not None}
        price = self.feed.mark(o.con_id, now) or o.lmt_price or o.aux_price or 0.0
        signed = o.total_qty if o.action == "BUY" else -o.total_qty
        result = what_if(acct, marks, o.con_id, mult, signed, price)
        log.info("sim_what_if", client_id=o.client_id, order_id=o.order_id, init_margin_change=result.init_margin_change,
                 commission=result.commission)  # fmt: skip
        return BookEvent("whatif", o, what_if=result)

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
        prices = [req.lmt_price] if o.order_type in LIMIT_PRICED else []
        prices += [req.aux_price] if o.order_type in STOP_TYPES else []
        if any(p is None or (spec and not on_tick(p, spec.min_tick)) for p in prices):
            return PlaceOutcome(events=[BookEvent("error", o, code=110, text=_OFF_TICK)])
        o.total_qty = req.total_qty
        o.lmt_price = req.lmt_price
        if o.order_type in STOP_TYPES:
            o.aux_price = req.aux_price
        o.order_ref = req.order_ref or o.order_ref
        tif = (req.tif or "DAY").upper()
        if tif != o.tif and tif in ("DAY", "GTC"):
            o.tif = tif
            if self.links.held(o):
                o.expires_at = None
            else:
                nxt = self.feed.current_or_next_session(o.symbol, now)
                o.expires_at = (nxt[1] if nxt else now) if o.tif == "DAY" else None
        o.matched_until = max(o.matched_until, now)
        if o.remaining <= 0:
            o.status, o.done_at = "Filled", now
            return PlaceOutcome(events=[BookEvent("status", o),
                                        *self._link_events(self.links.after_fill(o, 0, now), now)])  # fmt: skip
        return PlaceOutcome(events=[BookEvent("status", o)])

    # ----- cancelling -----------------------------------------------------------------------
    def cancel(self, client_id: int, order_id: int, now: dt.datetime | None = None) -> PlaceOutcome:
        o = self.orders.get((client_id, order_id))
        if o is None:
            return PlaceOutcome(error=(10147, f"OrderId {order_id} that needs to be cancelled is not found."))
        if o.status not in ACTIVE and o.status != STAGED:
            return PlaceOutcome(events=[BookEvent("error", o, code=10148, text=(
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {o.status}."))])  # fmt: skip
        t = now or o.matched_until
        o.status, o.done_at = "Cancelled", t
        return PlaceOutcome(events=[BookEvent("status", o), BookEvent("error", o, code=202, text="Order Canceled - reason:"),
                                    *self._link_events(self.links.after_end(o, t), t)])  # fmt: skip

    # ----- playing time ---------------------------------------------------------------------
    def advance(self, t0: dt.datetime, t1: dt.datetime) -> list[BookEvent]:
        """Play (t0, t1]: session opens, triggers, fills in time order, linked orders, expiries.

        Each order's actions over the window come from ``order_types.plan``. They are applied in
        time order until one changes another order (an OCA member executes, a parent completes):
        everything at that instant is applied (one member per group and print when the group
        blocks), the links act, and the rest of the window is played again from that instant, so a
        released child or a shrunk member only ever sees later prints."""
        events: list[BookEvent] = []
        opened: set[tuple[int, int]] = set()
        for _ in range(MAX_ROUNDS):
            cut = self._play_round(t0, t1, events, opened)
            if cut is None:
                break
        else:
            log.error("sim_advance_rounds_exhausted", t0=t0.isoformat(), t1=t1.isoformat(), rounds=MAX_ROUNDS)
        for o in self.working():
            if self.links.held(o):
                if o.expires_at is not None and t1 >= o.expires_at:  # a GTD child may expire while held
                    events += self._end(o, min(o.expires_at, t1), "expired")
                continue
            month = self.feed.u.month(o.con_id)
            expired_contract = month is not None and month.last_trade_date < self.feed.trade_date(o.symbol, t1)
            if (o.expires_at is not None and t1 >= o.expires_at) or expired_contract:
                t = min(o.expires_at, t1) if o.expires_at is not None else t1
                log.debug("sim_order_expired", client_id=o.client_id, order_id=o.order_id,
                          contract_expired=expired_contract)  # fmt: skip
                events += self._end(o, t, "expired")
                continue
            if o.tif == "OPG":
                continue  # PreSubmitted until its opening auction
            in_session = self.feed.session_at(o.symbol, t1) is not None
            if o.status == "PreSubmitted" and in_session:
                o.status = "Submitted"
                events.append(BookEvent("status", o))
            elif o.status == "Submitted" and not in_session:
                o.status = "PreSubmitted"  # a GTC order waiting for the next session, as IB shows it
                events.append(BookEvent("status", o))
        return events

    def _live(self) -> list[WorkingOrder]:
        """Working orders that may act now (children wait for their parent; a resting order waits
        for its cancel)."""
        return [o for o in self.working() if not self.links.held(o) and o.rest_rule is None]

    def _play_round(self, t0: dt.datetime, t1: dt.datetime, events: list[BookEvent],
                    opened: set[tuple[int, int]]) -> dt.datetime | None:  # fmt: skip
        """One pass over the window; returns the instant it stopped at when links acted, else None."""
        planned: list[tuple[dt.datetime, int, WorkingOrder, OrderAction]] = []
        ends: dict[tuple[int, int], dt.datetime] = {}
        live = self._live()
        for o in live:
            start = max(o.matched_until, t0)
            end = t1 if o.expires_at is None else min(t1, o.expires_at)
            if end <= start:
                continue
            ends[(o.client_id, o.order_id)] = end
            for a in plan(o, start, end, self.market):
                planned.append((a.time, len(planned), o, a))
        planned.sort(key=lambda x: (x[0], x[1]))
        cut: dt.datetime | None = None
        blocked: set[object] = set()
        linked: list[tuple[WorkingOrder, float, dt.datetime]] = []
        for t, _, o, a in planned:
            if cut is not None and t > cut:
                break
            if o.status not in ACTIVE:
                continue  # cancelled or completed by a link earlier in this pass
            if a.kind == "trigger":
                o.triggered = True
                log.debug("sim_stop_triggered", client_id=o.client_id, order_id=o.order_id, at=t.isoformat())
                continue
            if a.kind == "cancel":
                log.info("sim_auction_cancel", client_id=o.client_id, order_id=o.order_id, reason=a.reason)
                events += self._end(o, t, a.reason)
                continue
            group = self.links.group(o)
            if group is not None and group in blocked:
                continue  # with block, one member per print: the others act on later prints
            if o.status == "PreSubmitted" and (o.client_id, o.order_id) not in opened:
                o.status = "Submitted"
                opened.add((o.client_id, o.order_id))
                events.append(BookEvent("status", o))
            completes = a.qty >= o.remaining
            acts = self.links.acts_on_fill(o, completes)
            events.append(self._fill(o, t, a.qty, a.price))
            if acts:
                cut = t if cut is None else cut
                linked.append((o, float(a.qty), t))
                if self.links.blocks(o):
                    blocked.add(group)
        for o, qty, t in linked:
            events += self._link_events(self.links.after_fill(o, qty, t), t)
        for o in live:
            played = ends.get((o.client_id, o.order_id))
            if played is not None and o.status in ACTIVE:
                o.matched_until = max(o.matched_until, cut if cut is not None else played)
        return cut

    def _end(self, o: WorkingOrder, t: dt.datetime, why: str) -> list[BookEvent]:
        """``o`` is cancelled at ``t`` by the exchange (expiry, auction limit not met)."""
        o.status, o.done_at = "Cancelled", t
        return [BookEvent("status", o), *self._link_events(self.links.after_end(o, t), t)]

    def _link_events(self, changes: list[LinkChange], t: dt.datetime) -> list[BookEvent]:
        out: list[BookEvent] = []
        for ch in changes:
            o = ch.order
            if ch.what == "released":
                self._release(o, t)
            log.debug("sim_order_linked", client_id=o.client_id, order_id=o.order_id, what=ch.what,
                      total=o.total_qty, status=o.status)  # fmt: skip
            out.append(BookEvent("status", o))
        return out

    def _release(self, o: WorkingOrder, t: dt.datetime) -> None:
        """A child whose parent just filled starts working at ``t`` (later prints only)."""
        o.matched_until = max(o.matched_until, t)
        session = self.feed.session_at(o.symbol, t)
        if o.tif == "DAY":
            nxt = session or self.feed.current_or_next_session(o.symbol, t)
            o.expires_at = nxt[1] if nxt else t
        o.status = "Submitted" if session and o.tif != "OPG" else "PreSubmitted"

    def fill_now(self, o: WorkingOrder, t: dt.datetime, price: float) -> list[BookEvent]:
        """Fill the whole remainder at ``price`` (the fault injector's fill racing a cancel), with
        what the fill does to linked orders."""
        qty = int(o.remaining)
        if qty <= 0 or self.links.held(o):
            return []  # a child waiting for its parent cannot trade, not even in a race
        ev = self._fill(o, t, qty, price)
        return [ev, *self._link_events(self.links.after_fill(o, qty, t), t)]

    def _fill(self, o: WorkingOrder, t: dt.datetime, qty: int, price: float) -> BookEvent:
        acct = self.accounts[o.account]
        spec = self.feed.u.spec(o.symbol)
        mult = spec.multiplier if spec else 1.0
        # the session's trade date: a closing-auction fill at the close instant still belongs to it
        session_day = self.feed.trade_date(o.symbol, t - _INSTANT)
        booked = acct.apply_fill(o.con_id, o.action, qty, price, mult, session_day)
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


_INSTANT = dt.timedelta(microseconds=1)
_OFF_TICK = "The price does not conform to the minimum price variation for this contract."
