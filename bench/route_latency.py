"""route_order -> the broker's acknowledgement, on loopback against the embedded exchange.

Each order goes through the whole path: quote snapshot, risk gate, INTENT row committed to the
store (synchronous=FULL), placeOrder, and the exchange's Submitted/PreSubmitted status. The
latency is measured from the start of the child order to the acknowledgement event. Run twice:
with ib_async's default 45 requests/s throttle (as against a real gateway) and with it lifted
(embedded exchange only). Prints figures; never fails.

    .venv/bin/python bench/route_latency.py [--orders 200]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402

from hydra_engine.broker.gateway import BrokerGateway  # noqa: E402
from hydra_engine.execution.fill_journal import FillJournal  # noqa: E402
from hydra_engine.execution.order_manager import OrderManager  # noqa: E402
from hydra_engine.execution.patience import PatienceSchedule, PatienceStep  # noqa: E402
from hydra_engine.markets import CATALOG  # noqa: E402
from hydra_engine.risk.gate import RiskConfig, RiskGate  # noqa: E402
from hydra_engine.sim.exchange_server import EmbeddedExchange  # noqa: E402
from hydra_engine.store.database import Store  # noqa: E402

WEEKEND = dt.datetime(2018, 1, 6, 15, 0, tzinfo=dt.timezone.utc)
"""Orders rest (PreSubmitted) so every one is acknowledged and none fills."""


def quiet() -> None:
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def run(orders: int, lifted: bool, workdir: Path) -> dict[str, float]:
    ex = await EmbeddedExchange.start(port=0, state_path=workdir / f"ex-{lifted}.json")
    await ex.advance_to(WEEKEND)
    store = await Store.open_path(workdir / f"hydra-{lifted}.db", "DU1234567", clock=ex.clock)
    gw = BrokerGateway(port=ex.port, client_id=9, embedded=lifted, clock=ex.clock)
    gate = await RiskGate.open(store.conn, RiskConfig(max_orders_per_day=100_000), tx=store.tx,
                              today=lambda: ex.clock.now().date())
    om = OrderManager(
        gw, gate, store, FillJournal(store.conn, tx=store.tx), ex.clock,
        patience=PatienceSchedule(steps=(PatienceStep(0, 0.0),), cancel_after_s=60), max_adv_fraction=1.0,
        wait_for_open=False,  # the orders rest over the weekend; their schedule runs from the send
    )
    await gw.connect()
    market = CATALOG["CL"]
    month = (await gw.resolve_contract(market)).active
    quote = await gw.get_quote(month)
    lat: list[float] = []
    wire: list[float] = []
    t0 = time.perf_counter()
    for _ in range(orders):
        task = asyncio.create_task(om.route_order(
            month, "BUY", 1, 100_000.0, quote.mid, 0.0, 1_000_000.0, 1_000_000.0,
            quote.mid * month.multiplier, 500.0, 0.0, daily_sigma=1.0,
        ))
        await om.wait_idle(min_working=1)
        wo = om.working_orders[0]
        await asyncio.wait_for(wo.acked.wait(), 10)
        lat.append(wo.ack_latency_ms or float("nan"))
        wire.append(wo.wire_ack_ms or float("nan"))
        await ex.advance_to(ex.clock.now() + dt.timedelta(seconds=61))  # schedule ends: cancel
        await task
    wall = time.perf_counter() - t0
    await om.close()
    await gw.disconnect()
    await gate.close()
    await store.close()
    await ex.stop()
    return {"median_ms": statistics.median(lat), "p99_ms": pct(lat, 99), "max_ms": max(lat),
            "orders_per_s": orders / wall, "wire_median_ms": statistics.median(wire), "wire_p99_ms": pct(wire, 99)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=200)
    args = ap.parse_args()
    quiet()
    with tempfile.TemporaryDirectory() as d:
        for lifted in (False, True):
            r = await run(args.orders, lifted, Path(d))
            label = "throttle lifted (embedded)" if lifted else "default 45 req/s throttle"
            print(f"route_order -> ack, {args.orders} orders, {label}: median {r['median_ms']:.2f} ms, "
                  f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms, {r['orders_per_s']:.1f} orders/s "
                  f"(each order: quote, gate, INTENT commit, place, ack, then cancel)  goal p99 < 10 ms; "
                  f"placeOrder -> ack alone: median {r['wire_median_ms']:.2f} ms, p99 {r['wire_p99_ms']:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
