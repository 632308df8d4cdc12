"""Walk every request a client library can send against a running exchange, and say how each ended.

The coverage check behind ``bench/sim_coverage.py`` and ``tests/sim/test_requests_walk.py``: for
each outgoing message id of ib_async 2.1, ib_insync 0.9.86 and IB's ``ibapi`` 9.81, call the
request through the real client (its ``EClient``-style methods, which all three share) and watch
the client's incoming messages for up to ``WAIT_S``:

- ``served``: a message that answers the request arrived;
- ``error``: an error arrived on the request's own id (on -1 for requests that carry none);
- ``silent``: nothing, where IB too sends nothing until an event (cancels, news bulletins...);
- ``missing``: nothing where an answer was due, or error 505 (unknown message).

Streams (real-time bars, tick-by-tick) answer as the exchange clock moves, so the caller keeps
the clock moving while it walks. Run as ``python -m hydra_engine.sim.request_walk --client ibapi
--port N`` (one JSON result per line): ib_insync and ibapi are driven in their own process.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

WAIT_S = 1.0
"""How long a request may take to end."""
FARM_NOTICES = range(2100, 2200)


@dataclass(frozen=True, slots=True)
class Step:
    """One request: the method all three clients name the same, and what ends it."""

    name: str
    msg_id: int
    args: Callable[[SimpleNamespace], tuple]
    answers: frozenset[int] = frozenset()
    """Incoming message ids that answer it; empty for a request IB answers with nothing."""
    carries_id: bool = True
    """Whether the request has its own id (its error comes on that id, else on -1)."""


def _s(name: str, msg_id: int, args: Callable[[SimpleNamespace], tuple], answers: tuple[int, ...] = (),
       carries_id: bool = True) -> Step:  # fmt: skip
    return Step(name, msg_id, args, frozenset(answers), carries_id)


STEPS: tuple[Step, ...] = (
    _s("reqMktData", 1, lambda c: (c.rid, c.contract, "", False, False, []), (1, 2, 58)),
    _s("cancelMktData", 2, lambda c: (c.prev,)),
    _s("placeOrder", 3, lambda c: (c.rid, c.contract, c.order()), (3, 5)),
    _s("cancelOrder", 4, lambda c: (c.prev,), (3,)),
    _s("reqOpenOrders", 5, lambda c: (), (53,), carries_id=False),
    _s("reqAccountUpdates", 6, lambda c: (True, c.account), (6, 7, 8, 54), carries_id=False),
    _s("reqExecutions", 7, lambda c: (c.rid, c.lib.ExecutionFilter()), (11, 55)),
    _s("reqIds", 8, lambda c: (1,), (9,), carries_id=False),
    _s("reqContractDetails", 9, lambda c: (c.rid, c.contract), (10, 52)),
    _s("reqMktDepth", 10, lambda c: (c.rid, c.contract, 5, False, []), (12, 13)),
    _s("cancelMktDepth", 11, lambda c: (c.prev, False)),
    _s("reqNewsBulletins", 12, lambda c: (True,), carries_id=False),
    _s("cancelNewsBulletins", 13, lambda c: (), carries_id=False),
    _s("setServerLogLevel", 14, lambda c: (2,), carries_id=False),
    _s("reqAutoOpenOrders", 15, lambda c: (True,), carries_id=False),
    _s("reqAllOpenOrders", 16, lambda c: (), (53,), carries_id=False),
    _s("reqManagedAccts", 17, lambda c: (), (15,), carries_id=False),
    _s("requestFA", 18, lambda c: (1,), carries_id=False),
    _s("replaceFA", 19, lambda c: (c.rid, 1, "<ListOfGroups/>")),
    _s("reqHistoricalData", 20, lambda c: (c.rid, c.contract, "", "1 D", "1 hour", "TRADES", 0, 1, False, []),
       (17,)),
    _s("exerciseOptions", 21, lambda c: (c.rid, c.contract, 1, 1, c.account, 0)),
    _s("reqScannerSubscription", 22, lambda c: (c.rid, c.scanner(), [], [])),
    _s("cancelScannerSubscription", 23, lambda c: (c.prev,)),
    _s("reqScannerParameters", 24, lambda c: (), (19,), carries_id=False),
    _s("cancelHistoricalData", 25, lambda c: (c.prev,)),
    _s("reqCurrentTime", 49, lambda c: (), (49,), carries_id=False),
    _s("reqRealTimeBars", 50, lambda c: (c.rid, c.contract, 5, "TRADES", False, []), (50,)),
    _s("cancelRealTimeBars", 51, lambda c: (c.prev,)),
    _s("reqFundamentalData", 52, lambda c: (c.rid, c.contract, "ReportSnapshot", [])),
    _s("cancelFundamentalData", 53, lambda c: (c.prev,)),
    _s("calculateImpliedVolatility", 54, lambda c: (c.rid, c.option, 1.5, 60.0, [])),
    _s("calculateOptionPrice", 55, lambda c: (c.rid, c.option, 0.3, 60.0, [])),
    _s("cancelCalculateImpliedVolatility", 56, lambda c: (c.prev,)),
    _s("cancelCalculateOptionPrice", 57, lambda c: (c.prev,)),
    _s("reqGlobalCancel", 58, lambda c: (), carries_id=False),
    _s("reqMarketDataType", 59, lambda c: (1,), carries_id=False),
    _s("reqPositions", 61, lambda c: (), (61, 62), carries_id=False),
    _s("reqAccountSummary", 62, lambda c: (c.rid, "All", "NetLiquidation"), (63, 64)),
    _s("cancelAccountSummary", 63, lambda c: (c.prev,)),
    _s("cancelPositions", 64, lambda c: (), carries_id=False),
    _s("verifyRequest", 65, lambda c: ("walk", "1"), (65, 66), carries_id=False),
    _s("verifyMessage", 66, lambda c: ("data",), (65, 66), carries_id=False),
    _s("queryDisplayGroups", 67, lambda c: (c.rid,), (67,)),
    _s("subscribeToGroupEvents", 68, lambda c: (c.rid, 1)),
    _s("updateDisplayGroup", 69, lambda c: (c.prev, "8314@SMART")),
    _s("unsubscribeFromGroupEvents", 70, lambda c: (c.prev,)),
    _s("verifyAndAuthRequest", 72, lambda c: ("walk", "1", "key"), (69, 70), carries_id=False),
    _s("verifyAndAuthMessage", 73, lambda c: ("data", "xyz"), (69, 70), carries_id=False),
    _s("reqPositionsMulti", 74, lambda c: (c.rid, c.account, ""), (71, 72)),
    _s("cancelPositionsMulti", 75, lambda c: (c.prev,)),
    _s("reqAccountUpdatesMulti", 76, lambda c: (c.rid, c.account, "", False), (73, 74)),
    _s("cancelAccountUpdatesMulti", 77, lambda c: (c.prev,)),
    _s("reqSecDefOptParams", 78, lambda c: (c.rid, "CL", "", "FUT", c.con_id), (75, 76)),
    _s("reqSoftDollarTiers", 79, lambda c: (c.rid,), (77,)),
    _s("reqFamilyCodes", 80, lambda c: (), (78,), carries_id=False),
    _s("reqMatchingSymbols", 81, lambda c: (c.rid, "CL"), (79,)),
    _s("reqMktDepthExchanges", 82, lambda c: (), (80,), carries_id=False),
    _s("reqSmartComponents", 83, lambda c: (c.rid, "a6"), (82,)),
    _s("reqNewsArticle", 84, lambda c: (c.rid, "BZ", "BZ$1", [])),
    _s("reqNewsProviders", 85, lambda c: (), (85,), carries_id=False),
    _s("reqHistoricalNews", 86, lambda c: (c.rid, c.con_id, "BZ", "", "", 10, []), (86, 87)),
    _s("reqHeadTimeStamp", 87, lambda c: (c.rid, c.contract, "TRADES", 0, 1), (88,)),
    _s("reqHistogramData", 88, lambda c: (c.rid, c.contract, False, "3 days"), (89,)),
    _s("cancelHistogramData", 89, lambda c: (c.prev,)),
    _s("cancelHeadTimeStamp", 90, lambda c: (c.prev,)),
    _s("reqMarketRule", 91, lambda c: (c.rule_id,), (93,), carries_id=False),
    _s("reqPnL", 92, lambda c: (c.rid, c.account, ""), (94,)),
    _s("cancelPnL", 93, lambda c: (c.prev,)),
    _s("reqPnLSingle", 94, lambda c: (c.rid, c.account, "", c.con_id), (95,)),
    _s("cancelPnLSingle", 95, lambda c: (c.prev,)),
    _s("reqHistoricalTicks", 96, lambda c: (c.rid, c.contract, "", c.end, 10, "TRADES", 0, False, []), (96, 97, 98)),
    _s("reqTickByTickData", 97, lambda c: (c.rid, c.contract, "Last", 0, False), (99,)),
    _s("cancelTickByTickData", 98, lambda c: (c.prev,)),
    _s("reqCompletedOrders", 99, lambda c: (False,), (101, 102), carries_id=False),
    _s("reqWshMetaData", 100, lambda c: (c.rid,)),
    _s("cancelWshMetaData", 101, lambda c: (c.prev,)),
    _s("reqWshEventData", 102, lambda c: (c.rid, c.wsh()), ()),
    _s("cancelWshEventData", 103, lambda c: (c.prev,)),
    _s("reqUserInfo", 104, lambda c: (c.rid,), (107,)),
)  # fmt: skip
"""Every outgoing request but the handshake's startApi (71), which every connection sends."""


@dataclass(slots=True)
class Result:
    client: str
    name: str
    msg_id: int
    outcome: str
    """served, error, silent or missing."""
    detail: str
    seconds: float


@dataclass(slots=True)
class Inbox:
    """Messages the client received, as (msg_id, fields) with a monotonic index."""

    items: list[tuple[int, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fields: list[str]) -> None:
        try:
            msg_id = int(fields[0])
        except (ValueError, IndexError):
            return
        with self.lock:
            self.items.append((msg_id, fields))

    def since(self, k: int) -> list[tuple[int, list[str]]]:
        with self.lock:
            return self.items[k:]

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)


def judge(step: Step, req_id: int, got: list[tuple[int, list[str]]]) -> tuple[str, str] | None:
    """Outcome from the messages since the request, or None while undecided."""
    for msg_id, f in got:
        if msg_id == 4 and len(f) > 3:
            rid, code = int(f[2]), int(f[3])
            if int(code) in FARM_NOTICES:
                continue
            if code == 505:
                return "missing", f"505 {f[4][:60]}"
            if rid == (req_id if step.carries_id else -1) or (rid == req_id and req_id > 0):
                return "error", f"{code} {f[4][:80]}"
        elif msg_id in step.answers:
            return "served", f"message {msg_id}"
    return None


def expected_silent(step: Step) -> bool:
    return not step.answers


# ----- drivers --------------------------------------------------------------------------------
class _Walker(abc.ABC):
    """Shared walk loop; subclasses say how to call a method and how to wait."""

    client = ""

    def __init__(self, inbox: Inbox, ctx: SimpleNamespace) -> None:
        self.inbox = inbox
        self.ctx = ctx

    @abc.abstractmethod
    def next_id(self) -> int:
        """A fresh request id in the client's own numbering."""

    @abc.abstractmethod
    def call(self, name: str, args: tuple) -> None:
        """Send one request through the client's own method ``name``."""

    def steps(self, supported: Callable[[Step], bool]) -> list[Step]:
        return [s for s in STEPS if supported(s)]


async def walk_async(walker: _Walker, steps: list[Step], sleep: Callable[[float], Any]) -> list[Result]:
    """Walk ``steps`` with ``walker``; ``sleep`` lets the client's I/O run between checks."""
    out = []
    prev = 0
    for step in steps:
        rid = walker.next_id()
        walker.ctx.rid, walker.ctx.prev = rid, prev
        k = len(walker.inbox)
        t0 = time.perf_counter()
        walker.call(step.name, step.args(walker.ctx))
        verdict = None
        sentinel_sent = False
        while time.perf_counter() - t0 < WAIT_S:
            await sleep(0.005)
            got = walker.inbox.since(k)
            verdict = judge(step, rid if step.carries_id else -1, got)
            if verdict is not None:
                break
            if expected_silent(step):
                if not sentinel_sent:
                    walker.call("reqCurrentTime", ())
                    sentinel_sent = True
                elif any(m == 49 for m, _ in got):
                    verdict = ("silent", "no answer, as IB")
                    break
        if verdict is None:
            verdict = ("missing", f"no answer within {WAIT_S} s")
        out.append(Result(walker.client, step.name, step.msg_id, verdict[0], verdict[1],
                          round(time.perf_counter() - t0, 4)))  # fmt: skip
        if step.carries_id:
            prev = rid
    return out


def _ctx(lib: SimpleNamespace, contract: Any, option: Any, account: str, con_id: int, rule_id: int, end: str) -> SimpleNamespace:
    return SimpleNamespace(lib=lib, contract=contract, option=option, account=account, con_id=con_id,
                           rule_id=rule_id, end=end, rid=0, prev=0,
                           order=lambda: lib.limit_order(), scanner=lambda: lib.scanner(),
                           wsh=lambda: lib.wsh(con_id))  # fmt: skip


class IbAsyncWalker(_Walker):
    """ib_async or ib_insync: their ``Client`` has the EClient methods; the decoder is hooked."""

    def __init__(self, ib: Any, client: str, inbox: Inbox, ctx: SimpleNamespace) -> None:
        super().__init__(inbox, ctx)
        self.ib = ib
        self.client = client
        dec = ib.client.decoder
        original = dec.interpret

        def interpret(fields: list[str]) -> None:
            inbox.add(list(fields))
            original(fields)

        dec.interpret = interpret

    def next_id(self) -> int:
        return int(self.ib.client.getReqId())

    def call(self, name: str, args: tuple) -> None:
        getattr(self.ib.client, name)(*args)


def _ib_async_lib(mod: Any, price: float, con_id: int) -> SimpleNamespace:
    def limit_order() -> Any:
        return mod.LimitOrder("BUY", 1, round(price / 2, 2))

    def scanner() -> Any:
        return mod.ScannerSubscription(instrument="FUT.US", locationCode="FUT.US", scanCode="TOP_PERC_GAIN")

    def wsh(cid: int) -> Any:
        return mod.WshEventData(conId=cid)

    return SimpleNamespace(ExecutionFilter=mod.ExecutionFilter, limit_order=limit_order, scanner=scanner, wsh=wsh)


async def walk_ib_async_like(module_name: str, port: int, client_id: int) -> list[Result]:
    """Connect ``ib_async`` (or ``ib_insync``) and walk every step it can send."""
    mod = __import__(module_name)
    ib = mod.IB()
    if hasattr(ib.client, "MaxRequests"):
        ib.client.MaxRequests = 0  # embedded exchange only: the walk sends ~90 requests at once
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=10)
    try:
        [cd] = (await ib.reqContractDetailsAsync(mod.Future("CL", exchange="NYMEX")))[:1]
        c = cd.contract
        price = (await ib.reqHistoricalDataAsync(c, "", "2 D", "1 day", "TRADES", False))[-1].close
        option = mod.FuturesOption("CL", c.lastTradeDateOrContractMonth, 60.0, "C", "NYMEX")
        end = (await ib.reqCurrentTimeAsync()).strftime("%Y%m%d %H:%M:%S UTC")
        ctx = _ctx(_ib_async_lib(mod, price, c.conId), c, option, ib.managedAccounts()[0], c.conId,
                   int(cd.marketRuleIds.split(",")[0]), end)  # fmt: skip
        inbox = Inbox()
        walker = IbAsyncWalker(ib, module_name, inbox, ctx)
        sends = set(outgoing_ids(module_name))
        return await walk_async(walker, [s for s in STEPS if s.msg_id in sends], asyncio.sleep)
    finally:
        ib.disconnect()


def walk_ibapi(port: int, client_id: int) -> list[Result]:
    """IB's official client: EClient's reader thread feeds the inbox; requests go from here."""
    from ibapi.client import EClient
    from ibapi.comm import make_field
    from ibapi.contract import Contract
    from ibapi.execution import ExecutionFilter
    from ibapi.order import Order
    from ibapi.scanner import ScannerSubscription
    from ibapi.wrapper import EWrapper

    inbox = Inbox()
    ready = threading.Event()
    state: dict[str, Any] = {}

    class W(EWrapper):
        def nextValidId(self, orderId: int) -> None:
            state["next"] = orderId
            ready.set()

        def managedAccounts(self, accountsList: str) -> None:
            state["account"] = accountsList.split(",")[0]

        def contractDetails(self, reqId: int, contractDetails: Any) -> None:
            state.setdefault("details", contractDetails)

        def contractDetailsEnd(self, reqId: int) -> None:
            state["details_done"] = True

        def currentTime(self, time: int) -> None:
            state["now"] = time

        def error(self, reqId: int, errorCode: int, errorString: str) -> None:  # quiet: the inbox judges
            pass

    app = EClient(W())
    app.connect("127.0.0.1", port, client_id)
    dec = app.decoder
    original = dec.interpret

    def interpret(fields: Any) -> None:
        inbox.add([f.decode("utf-8", "replace") if isinstance(f, bytes) else f for f in fields])
        original(fields)

    dec.interpret = interpret
    reader = threading.Thread(target=app.run, daemon=True)
    reader.start()
    try:
        if not ready.wait(10):
            raise TimeoutError("ibapi: no nextValidId")
        q = Contract()
        q.symbol, q.secType, q.exchange = "CL", "FUT", "NYMEX"
        app.reqContractDetails(9_000_000, q)
        t0 = time.monotonic()
        while "details_done" not in state and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        app.reqCurrentTime()
        while "now" not in state and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        end = time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime(state["now"]))
        cd = state["details"]
        c = cd.contract
        c.primaryExchange = ""
        option = Contract()
        option.symbol, option.secType, option.exchange, option.currency = "CL", "FOP", "NYMEX", "USD"
        option.lastTradeDateOrContractMonth, option.strike, option.right = c.lastTradeDateOrContractMonth, 60.0, "C"

        def limit_order() -> Any:
            o = Order()
            o.action, o.orderType, o.totalQuantity, o.lmtPrice = "BUY", "LMT", 1, 1.0
            return o

        def scanner() -> Any:
            s = ScannerSubscription()
            s.instrument, s.locationCode, s.scanCode = "FUT.US", "FUT.US", "TOP_PERC_GAIN"
            return s

        lib = SimpleNamespace(ExecutionFilter=ExecutionFilter, limit_order=limit_order, scanner=scanner, wsh=None)
        ctx = _ctx(lib, c, option, state.get("account", ""), c.conId, int(cd.marketRuleIds.split(",")[0]), end)
        raw = {  # EClient refuses these without 'extraAuth'; they go raw, as a client with it sends them
            "verifyRequest": lambda a: app.sendMsg(make_field(65) + make_field(1) + make_field(a[0]) + make_field(a[1])),
            "verifyMessage": lambda a: app.sendMsg(make_field(66) + make_field(1) + make_field(a[0])),
            "verifyAndAuthRequest": lambda a: app.sendMsg(make_field(72) + make_field(1) + "".join(map(make_field, a))),
            "verifyAndAuthMessage": lambda a: app.sendMsg(make_field(73) + make_field(1) + "".join(map(make_field, a))),
        }  # fmt: skip
        ids = iter(range(state["next"] + 1, 10**9))

        class Walker(_Walker):
            client = "ibapi"

            def next_id(self) -> int:
                return next(ids)

            def call(self, name: str, args: tuple) -> None:
                if name in raw:
                    raw[name](args)
                else:
                    getattr(app, name)(*args)

        sends = set(outgoing_ids("ibapi"))
        steps = [s for s in STEPS if s.msg_id in sends]
        return asyncio.run(walk_async(Walker(inbox, ctx), steps, lambda s: asyncio.sleep(s)))
    finally:
        app.disconnect()


def outgoing_ids(client: str) -> list[int]:
    """Every request message id a client library can send (from its own source), but startApi."""
    import inspect
    import re

    if client == "ibapi":
        from ibapi.message import OUT

        ids = {v for k, v in vars(OUT).items() if k.isupper() and isinstance(v, int)}
    else:
        mod = __import__(f"{client}.client", fromlist=["Client"])
        src = inspect.getsource(mod)
        ids = {int(m) for m in re.findall(r"self\.send\(\s*(\d+)", src)}
        ids |= {int(m) for m in re.findall(r"fields = \[\s*(\d+),", src)}
    return sorted(ids - {71})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--client", required=True, choices=("ib_async", "ib_insync", "ibapi"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", type=int, default=31)
    a = p.parse_args(argv)
    import logging

    logging.disable(logging.CRITICAL)
    if a.client == "ibapi":
        results = walk_ibapi(a.port, a.client_id)
    else:
        results = asyncio.run(walk_ib_async_like(a.client, a.port, a.client_id))
    for r in results:
        print(json.dumps(asdict(r)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
