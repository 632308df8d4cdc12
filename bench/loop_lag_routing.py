"""Event-loop lag while 10 orders in different markets/months route at once.

A 1 ms ticker records how late each wake-up is while ten ``route_order`` calls run concurrently
(quote, risk gate, INTENT commit, place, patience reprices, fills, journal). The embedded
exchange runs in the same process and loop (as in ``hydra-tui``), stepped in lock-step whenever
the order manager is idle, so its work is included in the figure. Prints figures; never fails.

    .venv/bin/python bench/loop_lag_routing.py [--rounds 3]
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

START = dt.datetime(2018, 1, 9, 15, 0, tzinfo=dt.timezone.utc)
PATIENCE = PatienceSchedule(
    steps=(PatienceStep(0, 0.0), PatienceStep(60, 0.5), PatienceStep(120, 1.0), PatienceStep(180, 1.0, 5)),
    cancel_after_s=300,
)


def quiet() -> None:
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def ticker(lags: list[tuple[float, float, float]], stop: asyncio.Event) -> None:
    """Records (start, end, lateness ms) of each 1 ms sleep."""
    period = 0.001
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(period)
        e = loop.time()
        lags.append((t, e, max(0.0, (e - t - period) * 1000.0)))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    quiet()
    with tempfile.TemporaryDirectory() as d:
        ex = await EmbeddedExchange.start(port=0, state_path=Path(d) / "ex.json")
        await ex.advance_to(START)
        store = await Store.open_path(Path(d) / "hydra.db", "DU1234567", clock=ex.clock)
        gw = BrokerGateway(port=ex.port, client_id=9, embedded=True, clock=ex.clock)
        gate = await RiskGate.open(store.conn, RiskConfig(max_orders_per_day=100_000), tx=store.tx,
                              today=lambda: ex.clock.now().date())
        om = OrderManager(gw, gate, store, FillJournal(store.conn, tx=store.tx), ex.clock, patience=PATIENCE, max_adv_fraction=1.0)
        await gw.connect()
        months = []
        for sym in ("CL", "ZO", "ZR", "LBR"):
            r = await gw.resolve_contract(CATALOG[sym])
            months += list(r.months[:3])
        months = months[:10]
        quotes = {m.con_id: await gw.get_quote(m) for m in months}
        lags: list[tuple[float, float, float]] = []
        plays: list[tuple[float, float]] = []
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(lags, stop))
        t0 = time.perf_counter()
        filled = 0
        n_orders = 0
        for rnd in range(args.rounds):
            side = "BUY" if rnd % 2 == 0 else "SELL"
            tasks = [
                asyncio.create_task(om.route_order(
                    m, side, 1, 10_000.0, quotes[m.con_id].mid, 0.0, 1_000_000.0, 1_000_000.0,
                    quotes[m.con_id].mid * m.multiplier, 500.0, 0.0, daily_sigma=1.0,
                ))
                for m in months
            ]
            n_orders += len(tasks)
            while not all(t.done() for t in tasks):
                await om.wait_idle(timeout_s=30)
                if all(t.done() for t in tasks):
                    break
                p0 = loop.time()
                await ex.advance_to(ex.clock.now() + dt.timedelta(seconds=30))
                plays.append((p0, loop.time()))
            filled += sum(int(t.result().filled) for t in tasks)
        wall = time.perf_counter() - t0
        stop.set()
        await tick
        await om.close()
        await gw.disconnect()
        await gate.close()
        await store.close()
        await ex.stop()
    every = [x for _, _, x in lags]
    engine = [x for t, e, x in lags if not any(a < e and t < b for a, b in plays)]
    print(f"loop lag, 10 instruments routing at once x {args.rounds} rounds ({n_orders} orders, {filled} filled, "
          f"{wall:.2f} s wall): all ticks ({len(every)}, exchange in-process) median {statistics.median(every):.3f} ms, "
          f"p99 {pct(every, 99):.3f} ms, max {max(every):.3f} ms; ticks outside the exchange's advance_to "
          f"({len(engine)}) median {statistics.median(engine):.3f} ms, p99 {pct(engine, 99):.3f} ms, "
          f"max {max(engine):.3f} ms  goal p99 < 5 ms")


if __name__ == "__main__":
    asyncio.run(main())
