"""Helpers for the order-type tests: read the exchange's own intraday paths to compute, independently
of the order book, where an order must trigger and fill; and a small threaded ``ibapi`` client.

The expected prices come from the same minute paths the exchange fills on (``intraday_path``) and,
after a stop triggers, from the fill model (``universe.match``) from the trigger print on, which is
exactly what a trader reading IB's rules would predict from those prints.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

from ibapi.client import EClient
from ibapi.contract import Contract as IbContract
from ibapi.order import Order as IbOrder
from ibapi.wrapper import EWrapper

UTC = dt.timezone.utc


def on_grid(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 10)


@dataclass(frozen=True)
class SessionView:
    """The session the exchange clock is in, for one contract month."""

    open: dt.datetime
    close: dt.datetime
    day: dt.date
    path: Any
    """The exchange's ``IntradayPath`` of that session."""

    def step_now(self, now: dt.datetime) -> int:
        return self.path.last_step_at_or_before(now)

    def prints_after(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, float]]:
        i0, i1 = self.path.first_step_after(start), self.path.last_step_at_or_before(end)
        return [(self.path.step_time(i), float(self.path.price[i])) for i in range(i0, i1 + 1)]


def session_of(ex: Any, symbol: str, con_id: int, at: dt.datetime | None = None) -> SessionView:
    at = at or ex.clock.now()
    bounds = ex.feed.session_at(symbol, at) or ex.feed.current_or_next_session(symbol, at)
    day = ex.feed.trade_date(symbol, bounds[0])
    return SessionView(bounds[0], bounds[1], day, ex.universe.intraday_path(con_id, day))


def next_session(ex: Any, symbol: str, con_id: int, after: dt.datetime) -> SessionView:
    """The first session opening strictly after ``after``."""
    t = after
    for _ in range(10):
        b = ex.feed.current_or_next_session(symbol, t)
        if b[0] > after:
            day = ex.feed.trade_date(symbol, b[0])
            return SessionView(b[0], b[1], day, ex.universe.intraday_path(con_id, day))
        t = b[1]
    raise AssertionError("no next session")


def first_trigger(s: SessionView, side: str, stop: float, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """Print time of the first trade at or through ``stop`` after ``start`` (IB's 'last' rule)."""
    for t, price in s.prints_after(start, end):
        if (price >= stop - 1e-9) if side == "BUY" else (price <= stop + 1e-9):
            return t
    raise AssertionError(f"the path never reaches {stop} between {start} and {end}")


def expected_after_trigger(ex: Any, con_id: int, side: str, qty: int, limit: float | None,
                           trigger: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, float, int]]:  # fmt: skip
    """Fills of the order a stop becomes, from the prints after its trigger print."""
    return [(f.time, f.price, f.qty) for f in ex.universe.match(con_id, side, qty, limit, trigger, end)]


def rest_of_session(s: SessionView, now: dt.datetime, end: dt.datetime) -> list[float]:
    return [p for _, p in s.prints_after(now, end)]


# ----- IB's official client (ibapi 9.81), on its own thread -----------------------------------------
@dataclass
class IbapiRecord:
    next_id: int | None = None
    details: list[Any] = field(default_factory=list)
    details_done: threading.Event = field(default_factory=threading.Event)
    status: dict[int, str] = field(default_factory=dict)
    fills: dict[int, list[tuple[str, float, float]]] = field(default_factory=dict)
    """orderId -> (time, price, shares) per execution."""
    positions: list[tuple[int, float]] = field(default_factory=list)
    positions_done: threading.Event = field(default_factory=threading.Event)
    errors: list[tuple[int, int, str]] = field(default_factory=list)


class IbapiClient(EWrapper, EClient):
    """``ibapi``'s EClient/EWrapper recording what arrives; its reader runs on a daemon thread."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self.rec = IbapiRecord()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # wrapper callbacks (reader thread)
    def nextValidId(self, orderId: int) -> None:  # noqa: N802,N803 - ibapi's names
        self.rec.next_id = orderId

    def contractDetails(self, reqId: int, contractDetails: Any) -> None:  # noqa: N802,N803
        self.rec.details.append(contractDetails)

    def contractDetailsEnd(self, reqId: int) -> None:  # noqa: N802,N803
        self.rec.details_done.set()

    def orderStatus(self, orderId: int, status: str, *args: Any) -> None:  # noqa: N802,N803
        with self._lock:
            self.rec.status[orderId] = status

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:  # noqa: N802,N803
        with self._lock:
            self.rec.fills.setdefault(execution.orderId, []).append((execution.time, execution.price, execution.shares))

    def position(self, account: str, contract: Any, position: float, avgCost: float) -> None:  # noqa: N802,N803
        with self._lock:
            self.rec.positions.append((contract.conId, float(position)))

    def positionEnd(self) -> None:  # noqa: N802
        self.rec.positions_done.set()

    def error(self, reqId: int, errorCode: int, errorString: str, *args: Any) -> None:  # noqa: N802,N803
        with self._lock:
            self.rec.errors.append((reqId, errorCode, errorString))

    # driving
    def start(self, port: int, client_id: int) -> None:
        self.connect("127.0.0.1", port, client_id)
        self._thread = threading.Thread(target=self.run, name="ibapi-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def future(self, symbol: str) -> IbContract:
        c = IbContract()
        c.symbol, c.secType, c.currency = symbol, "FUT", "USD"
        return c

    def take_id(self) -> int:
        assert self.rec.next_id is not None
        oid = self.rec.next_id
        self.rec.next_id += 1
        return oid

    @staticmethod
    def order(action: str, qty: int, order_type: str, lmt: float | None = None, aux: float | None = None,
              tif: str = "DAY") -> IbOrder:  # fmt: skip
        o = IbOrder()
        o.action, o.totalQuantity, o.orderType, o.tif = action, qty, order_type, tif
        if lmt is not None:
            o.lmtPrice = lmt
        if aux is not None:
            o.auxPrice = aux
        o.eTradeOnly = False
        o.firmQuoteOnly = False
        return o
