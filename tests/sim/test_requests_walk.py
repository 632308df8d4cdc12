"""No request without an answer: every outgoing message id of ib_async 2.1, ib_insync 0.9.86 and
IB's ibapi 9.81, called through the real client, ends within a second (answer, IB's error on its
own id, or nothing where IB too sends nothing until an event).

ib_async runs in this process; ib_insync (it may patch asyncio) and ibapi (its own reader thread)
each run the walk in a subprocess against the exchange served from here. The clock keeps moving
(20 simulated seconds every 50 ms) so that streams have something to send.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

import pytest

from hydra_engine.sim.request_walk import STEPS, WAIT_S, outgoing_ids, walk_ib_async_like

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
ERRORS = {15: 327, 18: 344, 19: 344, 21: 200, 22: 162, 52: 430, 54: 200, 55: 200, 84: 10276, 100: 10276, 102: 10276}
"""The requests a futures-only paper account refuses, with IB's code for each."""


def expected(msg_id: int) -> str:
    if msg_id in ERRORS:
        return "error"
    step = next(s for s in STEPS if s.msg_id == msg_id)
    return "served" if step.answers else "silent"


def check(results: list[dict], client: str) -> None:
    walked = {r["msg_id"] for r in results}
    assert walked == set(outgoing_ids(client)), f"{client}: not walked {set(outgoing_ids(client)) - walked}"
    bad = [r for r in results if r["outcome"] != expected(r["msg_id"])]
    assert not bad, "\n".join(f"{r['name']} ({r['msg_id']}): {r['outcome']} {r['detail']}" for r in bad)
    for r in results:
        assert r["seconds"] < WAIT_S, r
        if r["outcome"] == "error":
            assert r["detail"].startswith(f"{ERRORS[r['msg_id']]} "), r


@pytest.fixture
async def moving(make_exchange) -> AsyncIterator:
    """An exchange whose lock-step clock moves 20 s every 50 ms, so streams answer quickly."""
    made = []

    async def start(**kw):
        ex = await make_exchange(pacing=False, **kw)

        async def tick() -> None:
            while True:
                await asyncio.sleep(0.05)
                await ex.advance_to(ex.clock.now() + dt.timedelta(seconds=20))

        made.append(asyncio.create_task(tick()))
        return ex

    yield start
    for t in made:
        t.cancel()
    await asyncio.gather(*made, return_exceptions=True)


async def walk_in_subprocess(client: str, port: int) -> list[dict]:
    p = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hydra_engine.sim.request_walk", "--client", client, "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )  # fmt: skip
    out, err = await asyncio.wait_for(p.communicate(), 90)
    assert p.returncode == 0, err.decode()[-3000:]
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("version", [157, 178])
async def test_ib_async_every_request_ends(moving, until, version: int) -> None:
    ex = await moving(max_server_version=version)
    results = await walk_ib_async_like("ib_async", ex.port, 31)
    check([asdict(r) for r in results], "ib_async")
    await until(lambda: ex.clients == [], what="the walk's client gone")
    assert all(not s.data.streams for s in ex.registry.open_connections())  # its streams went with it


@pytest.mark.parametrize("version", [157, 178])
async def test_ib_insync_every_request_ends(moving, version: int) -> None:
    ex = await moving(max_server_version=version)
    check(await walk_in_subprocess("ib_insync", ex.port), "ib_insync")


async def test_ibapi_every_request_ends(moving) -> None:
    ex = await moving()  # ibapi 9.81 negotiates 157
    check(await walk_in_subprocess("ibapi", ex.port), "ibapi")


@pytest.mark.parametrize("version", [157, 178])
async def test_ib_async_awaitable_requests_end_within_a_second(moving, ib_client, version: int) -> None:
    """ib_async's own *Async methods return (with data, or empty after IB's error) within 1 s."""
    from ib_async import Future, FuturesOption, LimitOrder, ScannerSubscription, WshEventData

    ex = await moving(max_server_version=version)
    ib = await ib_client(client_id=8, ex=ex)
    [cd] = (await ib.reqContractDetailsAsync(Future("CL", exchange="NYMEX")))[:1]
    c, acct = cd.contract, ib.managedAccounts()[0]
    opt = FuturesOption("CL", c.lastTradeDateOrContractMonth, 60.0, "C", "NYMEX")
    now = ex.clock.now()
    calls = {
        "qualifyContractsAsync": lambda: ib.qualifyContractsAsync(Future("CL", c.lastTradeDateOrContractMonth, "NYMEX")),
        "reqTickersAsync": lambda: ib.reqTickersAsync(c),
        "whatIfOrderAsync": lambda: ib.whatIfOrderAsync(c, LimitOrder("BUY", 1, 10.0)),
        "reqCurrentTimeAsync": ib.reqCurrentTimeAsync,
        "reqAccountUpdatesAsync": lambda: ib.reqAccountUpdatesAsync(acct),
        "reqAccountUpdatesMultiAsync": lambda: ib.reqAccountUpdatesMultiAsync(acct),
        "reqAccountSummaryAsync": ib.reqAccountSummaryAsync,
        "reqOpenOrdersAsync": ib.reqOpenOrdersAsync,
        "reqAllOpenOrdersAsync": ib.reqAllOpenOrdersAsync,
        "reqCompletedOrdersAsync": lambda: ib.reqCompletedOrdersAsync(False),
        "reqExecutionsAsync": ib.reqExecutionsAsync,
        "reqPositionsAsync": ib.reqPositionsAsync,
        "reqMatchingSymbolsAsync": lambda: ib.reqMatchingSymbolsAsync("CL"),
        "reqMarketRuleAsync": lambda: ib.reqMarketRuleAsync(int(cd.marketRuleIds)),
        "reqHistoricalDataAsync": lambda: ib.reqHistoricalDataAsync(c, "", "1 D", "5 mins", "MIDPOINT", False),
        "reqHistoricalScheduleAsync": lambda: ib.reqHistoricalScheduleAsync(c, 3),
        "reqHistoricalTicksAsync": lambda: ib.reqHistoricalTicksAsync(c, "", now, 10, "BID_ASK", False),
        "reqHeadTimeStampAsync": lambda: ib.reqHeadTimeStampAsync(c, "TRADES", False, 1),
        "reqSmartComponentsAsync": lambda: ib.reqSmartComponentsAsync("a6"),
        "reqMktDepthExchangesAsync": ib.reqMktDepthExchangesAsync,
        "reqHistogramDataAsync": lambda: ib.reqHistogramDataAsync(c, False, "1 week"),
        "reqFundamentalDataAsync": lambda: ib.reqFundamentalDataAsync(c, "ReportSnapshot"),
        "reqScannerDataAsync": lambda: ib.reqScannerDataAsync(ScannerSubscription(instrument="FUT.US", locationCode="FUT.US", scanCode="TOP_PERC_GAIN")),
        "reqScannerParametersAsync": ib.reqScannerParametersAsync,
        "calculateImpliedVolatilityAsync": lambda: ib.calculateImpliedVolatilityAsync(opt, 1.5, 60.0),
        "calculateOptionPriceAsync": lambda: ib.calculateOptionPriceAsync(opt, 0.3, 60.0),
        "reqSecDefOptParamsAsync": lambda: ib.reqSecDefOptParamsAsync("CL", "", "FUT", c.conId),
        "reqNewsProvidersAsync": ib.reqNewsProvidersAsync,
        "reqNewsArticleAsync": lambda: ib.reqNewsArticleAsync("BZ", "BZ$1"),
        "reqHistoricalNewsAsync": lambda: ib.reqHistoricalNewsAsync(c.conId, "BZ", "", "", 10),
        "getWshMetaDataAsync": ib.getWshMetaDataAsync,
        "getWshEventDataAsync": lambda: ib.getWshEventDataAsync(WshEventData(conId=c.conId)),
        "reqUserInfoAsync": ib.reqUserInfoAsync,
    }  # fmt: skip
    slow = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(call(), WAIT_S)
        except TimeoutError:
            slow[name] = "did not end"
            continue
        dt_s = time.perf_counter() - t0
        if dt_s >= WAIT_S:  # a method with its own shorter timeout returned None at it: not an answer
            slow[name] = f"{dt_s:.2f} s"
    assert not slow, slow
    # requestFAAsync waits for its own 4 s whatever IB says (its key cannot be ended by an error):
    # the answer, error 344, is there within the second.
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    task = asyncio.ensure_future(ib.requestFAAsync(1))
    t0 = time.perf_counter()
    while 344 not in errors and time.perf_counter() - t0 < WAIT_S:
        await asyncio.sleep(0.005)
    assert 344 in errors
    task.cancel()
