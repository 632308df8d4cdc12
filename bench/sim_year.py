"""The embedded exchange's own cost for a simulated year: 252 trading days x every catalog market
(10), in lock-step, with a daily cycle per market as HYDRA runs it: contract details, 20 daily bars,
a snapshot quote, and an order (market or marketable limit) that fills in the next session.

Server-side time is measured inside the exchange around request handling and ``advance_to``
playing, as CPU time of the thread (``EmbeddedExchange.busy_cpu_seconds``) and as a perf counter
(``busy_seconds``); both exclude the ib_async client, which shares the process. Client throttle lifted (embedded
exchange only). Goal: < 10 s on 2 cores.
Figures only; never fails a build.

    .venv/bin/python bench/sim_year.py [--days 252] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

UTC = dt.timezone.utc


async def main(days: int, seed: int) -> None:
    import structlog
    from ib_async import IB, Future, LimitOrder, MarketOrder

    from hydra_engine.sim import EmbeddedExchange
    from hydra_engine.sim.catalog import DEFAULT_PRODUCTS
    from hydra_engine.sim.universe import build_universe

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)
    symbols = list(DEFAULT_PRODUCTS)
    t_build = time.perf_counter()
    universe = build_universe(seed=seed, symbols=symbols)
    t_build = time.perf_counter() - t_build
    ex = await EmbeddedExchange.start(port=0, seed=seed, universe=universe)
    ib = IB()
    ib.client.MaxRequests = 0  # embedded exchange only
    await ib.connectAsync("127.0.0.1", ex.port, clientId=1, timeout=10, raiseSyncErrors=True)
    wall0, cpu0, busy0, bcpu0 = time.perf_counter(), time.process_time(), ex.busy_seconds, ex.busy_cpu_seconds
    day = ex.clock.now().date()
    played = orders = 0
    trades = []
    while played < days:
        day += dt.timedelta(days=1)
        if day.weekday() >= 5:
            continue
        decision = dt.datetime.combine(day, dt.time(22, 30), tzinfo=UTC)  # after every market's close
        await ex.advance_to(decision)
        played += 1
        details = await asyncio.gather(*(ib.reqContractDetailsAsync(Future(s)) for s in symbols))
        fronts = [d[0].contract for d in details if d]
        await asyncio.gather(*(ib.reqHistoricalDataAsync(c, "", "20 D", "1 day", "TRADES", True) for c in fronts))
        tickers = await ib.reqTickersAsync(*fronts)
        for i, (c, tk, d) in enumerate(zip(fronts, tickers, details)):
            side = "BUY" if (played + i) % 2 else "SELL"
            if i % 2 and tk.close > 0:
                tick = d[0].minTick
                px = tk.close * (1.01 if side == "BUY" else 0.99)
                order = LimitOrder(side, 1, round(round(px / tick) * tick, 6), orderRef=f"y{played}-{i}")
            else:
                order = MarketOrder(side, 1, orderRef=f"y{played}-{i}")
            trades.append(ib.placeOrder(c, order))
            orders += 1
        while any(t.orderStatus.status == "PendingSubmit" for t in trades[-len(fronts):]):
            await asyncio.sleep(0)
    await ex.advance_to(ex.clock.now() + dt.timedelta(days=1))
    deadline = time.perf_counter() + 5.0  # let the last fills reach the client (no fixed sleep)
    while not all(t.isDone() for t in trades) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    wall, cpu, busy = time.perf_counter() - wall0, time.process_time() - cpu0, ex.busy_seconds - busy0
    busy_cpu = ex.busy_cpu_seconds - bcpu0
    n_exec = ex.book.exec_seq
    filled = sum(1 for t in trades if t.orderStatus.status == "Filled")
    ib.disconnect()
    await ex.stop()
    print(f"sim_year: {played} trading days x {len(symbols)} markets ({', '.join(symbols)}), seed {seed}")
    print(f"  universe build: {t_build:.2f} s (not counted)")
    print(f"  orders {orders}, filled {filled}, executions {n_exec}")
    print(f"  exchange time (server side): cpu {busy_cpu:.2f} s, perf counter {busy:.2f} s   goal < 10 s")
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: the perf counter includes time lost to other processes)")
    print(f"  whole process incl. ib_async client: wall {wall:.2f} s, cpu {cpu:.2f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=252)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    asyncio.run(main(a.days, a.seed))
