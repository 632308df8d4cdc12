"""Which requests the embedded exchange serves: walks every outgoing request of ib_async 2.1
(in this process), ib_insync 0.9.86 and IB's ibapi 9.81 (each in a subprocess) against a fresh
exchange whose lock-step clock keeps moving, and prints one row per request and the totals.

served: the exchange answered with data (possibly empty: no news, no options, no tiers);
error as IB: IB's error for that request on its own id (what a real paper account answers);
silent as IB: nothing, as IB sends nothing until an event (cancels, news bulletins...);
missing: no answer within a second, or error 505. Figures only; never fails a build.

    .venv/bin/python bench/sim_coverage.py [--version 178]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import sys
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELS = {"served": "served", "error": "error as IB", "silent": "silent as IB", "missing": "missing"}


async def walk_subprocess(client: str, port: int) -> list[dict]:
    p = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hydra_engine.sim.request_walk", "--client", client, "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )  # fmt: skip
    out, err = await asyncio.wait_for(p.communicate(), 180)
    if p.returncode != 0:
        print(f"{client}: walk failed: {err.decode()[-500:]}", file=sys.stderr)
        return []
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


async def main(version: int) -> None:
    import structlog

    from hydra_engine.sim import EmbeddedExchange
    from hydra_engine.sim.request_walk import walk_ib_async_like
    from hydra_engine.sim.universe import build_universe

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.disable(logging.CRITICAL)
    ex = await EmbeddedExchange.start(port=0, universe=build_universe(seed=7), max_server_version=version, pacing=False)

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.05)
            await ex.advance_to(ex.clock.now() + dt.timedelta(seconds=20))

    ticker = asyncio.create_task(tick())
    try:
        results = {"ib_async": [asdict(r) for r in await walk_ib_async_like("ib_async", ex.port, 31)]}
        for client in ("ib_insync", "ibapi"):
            results[client] = await walk_subprocess(client, ex.port)
    finally:
        ticker.cancel()
        await ex.stop()
    rows: dict[tuple[int, str], dict[str, dict]] = defaultdict(dict)
    for client, rs in results.items():
        for r in rs:
            rows[(r["msg_id"], r["name"])][client] = r
    print(f"sim_coverage: every outgoing request of ib_async 2.1, ib_insync 0.9.86, ibapi 9.81 "
          f"(exchange max server version {version}; ibapi negotiates 157, ib_insync at most 176)")  # fmt: skip
    print(f"{'id':>4}  {'request':<34} {'clients':<26} {'outcome':<13} {'slowest s':>9}  answer")
    totals: Counter[str] = Counter()
    per_client: dict[str, Counter[str]] = {c: Counter() for c in results}
    for (msg_id, name), by_client in sorted(rows.items()):
        outcomes = {r["outcome"] for r in by_client.values()}
        outcome = "missing" if "missing" in outcomes else sorted(outcomes)[0]
        if len(outcomes) > 1:
            outcome = "missing" if "missing" in outcomes else "/".join(sorted(outcomes))
        totals[outcome] += 1
        for c, r in by_client.items():
            per_client[c][r["outcome"]] += 1
        slowest = max(r["seconds"] for r in by_client.values())
        detail = next(iter(by_client.values()))["detail"]
        print(f"{msg_id:>4}  {name:<34} {','.join(sorted(by_client)):<26} {LABELS.get(outcome, outcome):<13} "
              f"{slowest:>9.3f}  {detail[:60]}")  # fmt: skip
    print()
    print(f"{'totals':<12} " + "  ".join(f"{LABELS[k]} {totals.get(k, 0)}" for k in LABELS) + f"  (of {sum(totals.values())} requests)")
    for c, cnt in per_client.items():
        print(f"{c:<12} " + "  ".join(f"{LABELS[k]} {cnt.get(k, 0)}" for k in LABELS) + f"  (of {sum(cnt.values())})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Walk every client request against the embedded exchange.")
    ap.add_argument("--version", type=int, default=178, help="exchange max server version (157..178)")
    asyncio.run(main(ap.parse_args().version))
