"""RSS of the embedded exchange's market side: 10 markets with 10 years of history.

Prints resident memory (psutil) after imports, after building the universe, and after touching
every daily bar of every contract month (plus the CONTFUT series and a few intraday paths).
Goal: under 150 MB. Prints figures only; never fails a build.

    .venv/bin/python bench/sim_memory.py [--years 10] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402


def rss_mb() -> float:
    gc.collect()
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    from hydra_engine.sim.catalog import DEFAULT_PRODUCTS
    from hydra_engine.sim.universe import build_universe

    base = rss_mb()
    print(f"rss after imports:          {base:7.1f} MB")
    end = dt.date(2025, 12, 31)
    start = dt.date(end.year - args.years + 1, 1, 1)
    t0 = time.perf_counter()
    u = build_universe(seed=args.seed, symbols=list(DEFAULT_PRODUCTS), start=start, end=end)
    t_build = time.perf_counter() - t0
    built = rss_mb()
    print(f"markets: {len(u.symbols)} ({', '.join(u.symbols)}), {start} .. {end}")
    print(f"rss after build:            {built:7.1f} MB  (+{built - base:.1f}; build {t_build:.2f} s)")
    t0 = time.perf_counter()
    n_bars = n_months = 0
    for sym in u.symbols:
        mkt = u._market(sym)  # every month the universe knows, expired or not
        for fm in mkt.months:
            bars = u.daily_bars(fm.con_id, end, 100_000)
            n_bars += len(bars)
            n_months += bool(bars)
        n_bars += len(u.continuous_bars(sym, end, 100_000))
    t_touch = time.perf_counter() - t0
    touched = rss_mb()
    print(f"bars touched: {n_bars} in {n_months} months ({t_touch:.2f} s, {n_bars / t_touch:,.0f} bars/s)")
    print(f"rss after touching bars:    {touched:7.1f} MB  (+{touched - base:.1f} over imports)")
    t0 = time.perf_counter()
    n_quotes = 0
    for sym in u.symbols:
        fm = u.front_month(sym, dt.date(2024, 6, 3))
        o, c = u.session_bounds(sym, dt.date(2024, 6, 3))
        at = o
        while at < c:
            u.quote(fm.con_id, at)
            n_quotes += 1
            at += dt.timedelta(minutes=7)
        u.match(fm.con_id, "BUY", 25, None, o, c)
    t_q = time.perf_counter() - t0
    final = rss_mb()
    print(f"quotes: {n_quotes} + 10 matches in {t_q:.2f} s ({n_quotes / t_q:,.0f} quotes/s)")
    print(f"rss after quotes/matches:   {final:7.1f} MB")
    served, n_served = asyncio.run(_serve_one_client(u))
    print(f"rss final, exchange serving an ib_async client ({n_served} bars over the wire): {served:7.1f} MB"
          f"  (goal < 150 MB: {'met' if served < 150 else 'MISSED'})")


async def _serve_one_client(u: object) -> tuple[float, int]:
    """The whole exchange, not just the market side: server, one real client, ten years of bars."""
    import logging

    from ib_async import IB, ContFuture

    from hydra_engine.sim import EmbeddedExchange

    logging.getLogger("ib_async").setLevel(logging.CRITICAL)
    from hydra_engine.sim.clock import SimClock

    clock = SimClock.lockstep(dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.timezone.utc))  # ten years behind it
    ex = await EmbeddedExchange.start(port=0, universe=u, clock=clock, pacing=False)
    ib = IB()
    ib.client.MaxRequests = 0  # embedded exchange only
    try:
        await ib.connectAsync("127.0.0.1", ex.port, clientId=1, timeout=10, raiseSyncErrors=True)
        n = 0
        for sym in u.symbols:  # type: ignore[attr-defined]
            [cf] = await ib.qualifyContractsAsync(ContFuture(sym))
            n += len(await ib.reqHistoricalDataAsync(cf, "", "10 Y", "1 day", "TRADES", True))
        return rss_mb(), n
    finally:
        ib.disconnect()
        await ex.stop()


if __name__ == "__main__":
    main()
