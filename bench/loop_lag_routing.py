"""Event-loop lag while 10 orders in different markets/months route at once.

A 1 ms ticker records how late each wake-up is while ten ``route_order`` calls run concurrently
(quote, risk gate, INTENT commit, place, patience reprices, fills, journal). By default the
embedded exchange runs in a child process, stepped in lock-step over a pipe whenever the order
manager is idle, so the figure is the engine's own loop; ``--in-process`` runs it on the same
loop (as ``hydra-tui`` does), which adds the exchange's own work. Prints figures; never fails.

    .venv/bin/python bench/loop_lag_routing.py [--rounds 10] [--in-process]
"""

from __future__ import annotations

import argparse
import json
import os
import asyncio
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402

from hydra_engine.broker.gateway import BrokerGateway  # noqa: E402
from hydra_engine.clock import ManualClock  # noqa: E402
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


CHILD = r"""
import asyncio, datetime as dt, json, logging, sys
sys.path.insert(0, sys.argv[1])
logging.disable(logging.CRITICAL)
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
from hydra_engine.sim.exchange_server import EmbeddedExchange

async def main():
    ex = await EmbeddedExchange.start(port=0)
    await ex.advance_to(dt.datetime.fromisoformat(sys.argv[2]))
    print(json.dumps({"port": ex.port}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        await ex.advance_to(dt.datetime.fromisoformat(line))
        print("ok", flush=True)
    await ex.stop()

asyncio.run(main())
"""


class RemoteExchange:
    """The exchange in a child process; ``advance_to`` steps it in lock-step over a pipe."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, clock: ManualClock) -> None:
        self.proc, self.port, self.clock = proc, port, clock

    @classmethod
    async def start(cls, start: dt.datetime) -> "RemoteExchange":
        root = str(Path(__file__).resolve().parents[1])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, root, start.isoformat(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": root},
        )
        assert proc.stdout is not None
        port = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))["port"]
        return cls(proc, port, ManualClock(start))

    async def advance_to(self, t: dt.datetime) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((t.isoformat() + "\n").encode())
        await self.proc.stdin.drain()
        assert (await self.proc.stdout.readline()).strip() == b"ok"
        self.clock.set(t)  # the engine's clock follows once the exchange has played up to t

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        await self.proc.stdin.drain()
        await asyncio.wait_for(self.proc.wait(), 30)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--in-process", action="store_true", help="run the exchange on the engine's loop")
    ap.add_argument("--persist-exchange", action="store_true",
                    help="(in-process) let the exchange save its state file; its save runs on the loop")
    args = ap.parse_args()
    quiet()
    idle: list[tuple[float, float, float]] = []
    stop0 = asyncio.Event()
    base = asyncio.create_task(ticker(idle, stop0))
    await asyncio.sleep(2.0)  # the machine's own noise: the same ticker with nothing else running
    stop0.set()
    await base
    with tempfile.TemporaryDirectory() as d:
        if args.in_process:
            ex: Any = await EmbeddedExchange.start(
                port=0, state_path=Path(d) / "ex.json" if args.persist_exchange else None)
            await ex.advance_to(START)
        else:
            ex = await RemoteExchange.start(START)
        try:
            await run_rounds(ex, Path(d), args, idle)
        finally:
            if isinstance(ex, RemoteExchange) and ex.proc.returncode is None:
                ex.proc.kill()  # never leave the child behind on an error


async def run_rounds(ex: Any, d: Path, args: argparse.Namespace, idle: list[tuple[float, float, float]]) -> None:
    clock = ex.clock
    store = await Store.open_path(d / "hydra.db", "DU1234567", clock=clock)
    gw = BrokerGateway(port=ex.port, client_id=9, embedded=True, clock=clock)
    gate = await RiskGate.open(store.conn, RiskConfig(max_orders_per_day=100_000), tx=store.tx,
                               today=lambda: clock.now().date())
    om = OrderManager(gw, gate, store, FillJournal(store.conn, tx=store.tx), clock, patience=PATIENCE,
                      max_adv_fraction=1.0)
    await gw.connect(timeout_s=30)
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
            await ex.advance_to(clock.now() + dt.timedelta(seconds=30))
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
    outside = [x for t, e, x in lags if not any(a < e and t < b for a, b in plays)]
    where = "in-process" + (" with state file" if args.persist_exchange else "") if args.in_process else "child process"
    print(f"loop lag, 10 instruments routing at once x {args.rounds} rounds ({n_orders} orders, {filled} filled, "
      f"{wall:.2f} s wall, exchange {where}): all {len(every)} ticks median {statistics.median(every):.3f} ms, "
      f"p99 {pct(every, 99):.3f} ms, max {max(every):.3f} ms; outside advance_to ({len(outside)}) "
      f"p99 {pct(outside, 99):.3f} ms  goal p99 < 5 ms; idle baseline ({len(idle)} ticks) "
      f"p99 {pct([x for _, _, x in idle], 99):.3f} ms, max {max(x for _, _, x in idle):.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
