"""FillJournal durable insert rate: one commit per fill vs group commit (prints figures only).

Connection set up as the Store does (WAL, synchronous=FULL), on a real file in a temp dir (or
--dir). Per-fill: sequential awaits, each returning after its own commit. Group commit: --inflight
fills in flight at once, each returning only after the commit that covers it; measured two ways:
waves (a burst of --inflight executions, all awaited before the next burst) and a steady stream
(--inflight writers, each sending its next fill as soon as its last is durable). The per-fill paths (and the fsync probe) run side by side in
alternating blocks of --block fills, the order rotating each block, so load from other work on a
shared machine falls on all of them alike; each has its own file.

Reference ("original"): the original HYDRA's insert path re-implemented from the facts in issue 13
(not its code): one synchronous ``sqlite3`` INSERT then commit per fill on the caller's thread, the
same columns and indexes (the v002 ``fills`` table as created then: the execId key, (symbol,
fill_time) and fill_time; ours has dropped the pair since v011), WAL and synchronous=FULL; once
bare and once with a formatted per-fill log line. The disk's own limit is printed beside: a loop of
small write+fsync on the same directory. So is the thread round trip (an event loop handing a no-op
to a worker thread and awaiting its answer), the floor any path pays that keeps the fsync off the
event loop, and the event-loop time each path takes per fill: all of the original's (it blocks
its caller's thread through the fsync), the main thread's CPU for ours.

    python bench/journal_inserts.py [--n 4000] [--group-n 40000] [--inflight 256] [--block 200]
                                    [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import logging
import os
import sys

import aiosqlite
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

from hydra_engine.execution.fill_journal import FillJournal, FillRecord  # noqa: E402
from hydra_engine.store.database import open_migrated

CPU_US: dict[str, tuple[float, int]] = {}
LOOP_US: list[float] = []
"""Main-thread (event loop) CPU per fill of our per-fill path, one figure per run."""
T0 = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.timezone.utc)


def make(i: int, tag: str) -> FillRecord:
    return FillRecord(exec_id=f"{tag}.{i:08d}.01.01", fill_time=T0 + dt.timedelta(milliseconds=i), symbol="CL",
                      contract_month="202703", direction="BUY" if i % 2 else "SELL", qty=1.0,
                      fill_price=70.02 if i % 2 else 69.98, limit_price=70.05 if i % 2 else 69.95,
                      arrival_mid=70.0, predicted_slippage=0.015, latency_ms=420.0, order_ref=f"H-CL-{i}",
                      perm_id=10_000 + i, commission=2.25, data_type="live")


async def open_db(path: Path) -> aiosqlite.Connection:
    return await open_migrated(path)


Writer = Callable[[list[FillRecord]], Awaitable[None]]


async def ours_writer(path: Path, stack: contextlib.AsyncExitStack) -> Writer:
    """Our per-fill path: ``FillJournal.log_fill`` awaited fill by fill, each its own commit."""
    conn = await open_db(path)
    stack.push_async_callback(conn.close)
    j = FillJournal(conn)

    async def write(recs: list[FillRecord]) -> None:
        for r in recs:
            await j.log_fill(r)
    return write


async def naive_writer(path: Path, stack: contextlib.AsyncExitStack) -> Writer:
    """Reference: one INSERT then commit() per fill through aiosqlite's public calls (no blocks)."""
    conn = await open_db(path)
    stack.push_async_callback(conn.close)
    sql = ("INSERT INTO fills (exec_id, fill_time, symbol, contract_month, direction, qty, limit_price, "
           "arrival_mid, fill_price, predicted_slippage, actual_slippage, latency_ms, order_ref, perm_id, "
           "commission, data_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")

    async def write(recs: list[FillRecord]) -> None:
        for r in recs:
            await conn.execute(sql, r._row())  # noqa: SLF001
            await conn.commit()
    return write


async def original_writer(path: Path, stack: contextlib.AsyncExitStack, with_log: bool) -> Writer:
    """The original's path: synchronous sqlite3 insert + commit per fill on the caller's thread
    (here the event loop's: it blocked its caller), optionally with its per-fill log line."""
    import sqlite3

    from hydra_engine.store.migrations import v002_fills

    db = sqlite3.connect(path)
    stack.callback(db.close)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.executescript(v002_fills.SQL)  # its fills table: the execId key and both time indexes
    sql = ("INSERT INTO fills (exec_id, fill_time, symbol, contract_month, direction, qty, limit_price, "
           "arrival_mid, fill_price, predicted_slippage, actual_slippage, latency_ms, order_ref, perm_id, "
           "commission, data_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    plog = logging.getLogger(f"original.fill_journal.{path.stem}")
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed by the stack
    stack.callback(sink.close)
    plog.handlers[:] = [logging.StreamHandler(sink)]
    plog.setLevel(logging.INFO if with_log else logging.WARNING)
    plog.propagate = False

    async def write(recs: list[FillRecord]) -> None:
        for r in recs:
            db.execute(sql, r._row())  # noqa: SLF001
            db.commit()
            plog.info("Logged fill: %s %s %s @ %.4f (slippage %.4f)", r.symbol, r.direction, r.qty, r.fill_price,
                      r.actual_slippage)
    return write


async def fsync_writer(d: Path, stack: contextlib.AsyncExitStack) -> Writer:
    """Small write + fsync per fill on the same disk: the ceiling for one durable commit per fill."""
    p = d / "fsync.probe"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
    stack.callback(p.unlink)
    stack.callback(os.close, fd)
    os.pwrite(fd, b"\0" * 4096 * 64, 0)
    os.fsync(fd)
    at = [0]

    async def write(recs: list[FillRecord]) -> None:
        for _ in recs:
            os.pwrite(fd, b"x" * 200, (at[0] % 64) * 4096)
            os.fsync(fd)
            at[0] += 1
    return write


async def per_fill_round(d: Path, i: int, n: int, block: int) -> dict[str, float]:
    """Fills per second of every per-fill path, written in alternating blocks of ``block`` fills
    (the order rotating each block), so a burst of load from elsewhere hits them all alike."""
    async with contextlib.AsyncExitStack() as stack:
        writers = {
            "fsync": await fsync_writer(d, stack),
            "original": await original_writer(d / f"og{i}.db", stack, False),
            "original+log": await original_writer(d / f"ol{i}.db", stack, True),
            "naive": await naive_writer(d / f"nv{i}.db", stack),
            "ours": await ours_writer(d / f"pf{i}.db", stack),
        }
        for name, write in writers.items():  # warm-up: each WAL grows to its working size
            await write([make(10**7 + k, f"w{i}{name}") for k in range(200)])
        recs = {name: [make(k, f"{i}{name}") for k in range(n)] for name in writers}
        took = dict.fromkeys(writers, 0.0)
        cpu = dict.fromkeys(writers, 0.0)
        loop_cpu = 0.0
        names = list(writers)
        for b, at in enumerate(range(0, n, block)):
            for name in names[b % len(names):] + names[:b % len(names)]:
                c, m, t = time.process_time(), time.thread_time(), time.perf_counter()
                await writers[name](recs[name][at:at + block])
                took[name] += time.perf_counter() - t
                cpu[name] += time.process_time() - c
                if name == "ours":
                    loop_cpu += time.thread_time() - m
    for name in writers:
        CPU_US[f"{name}:{i}"] = (cpu[name] / n * 1e6, n)
    LOOP_US.append(loop_cpu / n * 1e6)
    return {name: n / took[name] for name in writers}


async def round_trip_us(n: int) -> float:
    """Median microseconds for the event loop to hand a no-op to a worker thread and get the answer
    back (a dedicated thread fed by a queue, as aiosqlite's): the floor of a non-blocking commit."""
    import queue
    import threading

    loop = asyncio.get_running_loop()
    q: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()

    def worker() -> None:
        while (fut := q.get()) is not None:
            loop.call_soon_threadsafe(fut.set_result, None)

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    took = []
    for _ in range(n):
        fut = loop.create_future()
        t = time.perf_counter()
        q.put(fut)
        await fut
        took.append(time.perf_counter() - t)
    q.put(None)
    th.join()
    return sorted(took)[n // 2] * 1e6


async def group(path: Path, n: int, inflight: int) -> float:
    conn = await open_db(path)
    j = FillJournal(conn, group_commit=True)
    recs = [make(i, "g") for i in range(n)]
    await asyncio.gather(*(j.log_fill(make(10**7 + i, "w")) for i in range(inflight)))
    c0, commits0 = time.process_time(), j.commits
    t = time.perf_counter()
    for k in range(0, n, inflight):
        await asyncio.gather(*(j.log_fill(r) for r in recs[k:k + inflight]))
    await j.flush()
    dt_s = time.perf_counter() - t
    CPU_US[f"group:{path.name}"] = ((time.process_time() - c0) / n * 1e6, j.commits - commits0)
    await conn.close()
    return n / dt_s


async def group_clients(path: Path, n: int, inflight: int) -> float:
    """``inflight`` writers, each journalling its next fill as soon as its last one is durable: a
    steady stream with that many fills always in flight (the waves above leave the writer thread
    idle while the event loop starts the next wave, and the loop idle during each commit)."""
    conn = await open_db(path)
    j = FillJournal(conn, group_commit=True)
    recs = iter([make(i, "s") for i in range(n)])
    await asyncio.gather(*(j.log_fill(make(10**7 + i, "w")) for i in range(inflight)))

    async def client() -> None:
        for r in recs:
            await j.log_fill(r)

    c0, commits0 = time.process_time(), j.commits
    t = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(inflight)))
    await j.flush()
    dt_s = time.perf_counter() - t
    CPU_US[f"stream:{path.name}"] = ((time.process_time() - c0) / n * 1e6, j.commits - commits0)
    await conn.close()
    return n / dt_s


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--group-n", type=int, default=40_000)
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--block", type=int, default=200, help="fills per path before switching to the next")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        hop, rounds = [], []
        for i in range(a.repeat):
            hop.append(await round_trip_us(2000))
            rounds.append(await per_fill_round(Path(d), i, a.n, a.block))
        gc, gs = [], []
        for i in range(a.repeat):  # waves and stream alternate, so load from other work falls on both
            gc.append(await group(Path(d) / f"gc{i}.db", a.group_n, a.inflight))
            gs.append(await group_clients(Path(d) / f"gs{i}.db", a.group_n, a.inflight))
    fs, og, ol, nv, pf = ([r[k] for r in rounds] for k in ("fsync", "original", "original+log", "naive", "ours"))
    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    def runs(xs: list[float]) -> str:
        return ", ".join(f"{x:,.0f}" for x in xs)

    print(f"disk fsync limit (200-byte write + fsync, same dir): median {med(fs):,.0f}/s  (runs: {runs(fs)})")
    print(f"original re-implemented (sync sqlite3 insert + commit per fill): median {med(og):,.0f}/s  "
          f"(runs: {runs(og)}); {med(og) / med(fs):.0%} of the fsync limit")
    print(f"original with its per-fill log line: median {med(ol):,.0f}/s  (runs: {runs(ol)})")
    print(f"ours, per-fill commit (synchronous=FULL, WAL): {a.n} fills x{a.repeat}: "
          f"median {med(pf):,.0f}/s  (runs: {runs(pf)}); {med(pf) / med(fs):.0%} of the fsync limit")
    print(f"ratio ours / original: {med(pf) / med(og):.2f}x (goal >= 1.20x); "
          f"vs original with log line: {med(pf) / med(ol):.2f}x")
    print(f"thread round trip (loop -> worker thread -> loop, no work): median {med(hop):.0f} us "
          f"(runs: {', '.join(f'{x:.0f}' for x in hop)}); original blocks its event loop {1e6 / med(og):.0f} us "
          f"per fill, ours {med(LOOP_US):.0f} us (main-thread CPU)")
    floor = 1 / (1 / med(fs) + med(hop) / 1e6)
    print(f"ceiling of any path that keeps the fsync off the event loop (fsync limit + round trip, nothing else): "
          f"{floor:,.0f}/s = {floor / med(og):.2f}x the original; the 1.20x goal needs {1.2 * med(og):,.0f}/s")
    print(f"reference (public execute + commit per fill, no blocks): median {sorted(nv)[len(nv) // 2]:,.0f}/s  "
          f"(runs: {', '.join(f'{x:,.0f}' for x in nv)})")
    print(f"group commit, waves of {a.inflight} (each wave awaited before the next): {a.group_n} fills x{a.repeat}: "
          f"median {med(gc):,.0f}/s  (runs: {runs(gc)})")
    print(f"group commit, a steady stream with {a.inflight} in flight: {a.group_n} fills x{a.repeat}: "
          f"median {med(gs):,.0f}/s  (runs: {runs(gs)})  goal >= 100,000/s")
    for k, (us, commits) in CPU_US.items():
        print(f"  {k}: {us:.0f} us CPU per fill (all threads), {commits:,} commits")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    asyncio.run(main())
