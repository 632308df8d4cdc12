"""Connect latency against the embedded exchange: ``IB.connectAsync`` to ready, 50 times.

Each connect runs the whole start-up sequence ib_async performs (positions, open orders,
completed orders, account updates, account updates multi, executions) with
``raiseSyncErrors=True``. Prints median and p95 (goal < 50 ms). Figures only; never fails a build.

    .venv/bin/python bench/sim_connect.py [--n 50] [--version 178]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def main(n: int, version: int) -> None:
    import structlog
    from ib_async import IB

    from hydra_engine.sim import EmbeddedExchange

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    ex = await EmbeddedExchange.start(port=0, max_server_version=version)
    times: list[float] = []
    try:
        for i in range(n + 1):
            ib = IB()
            ib.client.MaxRequests = 0  # embedded exchange only
            t0 = time.perf_counter()
            await ib.connectAsync("127.0.0.1", ex.port, clientId=100 + i, timeout=5, raiseSyncErrors=True)
            dt_ms = (time.perf_counter() - t0) * 1000
            ib.disconnect()
            if i:  # the first connect warms imports and caches
                times.append(dt_ms)
    finally:
        await ex.stop()
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"sim_connect: server version {version}, {len(times)} connects")
    print(f"  median {statistics.median(times):.2f} ms   p95 {p95:.2f} ms   min {times[0]:.2f} ms   max {times[-1]:.2f} ms")
    print("  goal: < 50 ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--version", type=int, default=178, choices=(157, 178))
    a = ap.parse_args()
    asyncio.run(main(a.n, a.version))
