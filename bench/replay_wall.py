"""Wall time of ``hydra-tui replay --days 252`` with three markets and the agent on.

Runs the real command as a subprocess (a fresh temporary store, the embedded exchange in lock-step,
the agent's experiments in their own subprocesses) on a settings file naming CL, ZO and ZR, and
prints the wall time, the CPU time of the replay and of its children (the experiments), the peak
RSS of the replay process, and the report's summary lines. Goal: < 120 s on 2 cores.

Usage: python bench/replay_wall.py [--days 252] [--markets CL,ZO,ZR] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=252)
    ap.add_argument("--markets", default="CL,ZO,ZR")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    markets = [m.strip() for m in args.markets.split(",") if m.strip()]
    with tempfile.TemporaryDirectory(prefix="hydra-replay-bench-") as d:
        config = Path(d) / "markets.toml"
        config.write_text("".join(f"[markets.{m}]\n" for m in markets))
        cmd = [sys.executable, "-m", "hydra_tui.cli", "replay", "--days", str(args.days), "--seed", str(args.seed),
               "--config", str(config)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("HYDRA_HOME", None)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        peak = [0]

        def sample() -> None:  # the replay process's own RSS, every 0.2 s
            try:
                p = psutil.Process(proc.pid)
                while proc.poll() is None:
                    peak[0] = max(peak[0], p.memory_info().rss)
                    time.sleep(0.2)
            except psutil.NoSuchProcess:
                pass

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        wall = time.perf_counter() - t0
        sampler.join(timeout=1)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"hydra-tui replay --days {args.days} --markets {','.join(markets)} (agent on, seed {args.seed})")
    print(f"exit code                {proc.returncode}")
    print(f"wall time                {wall:8.1f} s   (goal < 120 s on 2 cores; {os.cpu_count()} CPUs here)")
    print(f"CPU, replay + children   {cpu:8.1f} s   (children: the experiment subprocesses)")
    print(f"peak RSS of the replay   {peak[0] / 2**20:8.0f} MB")
    for line in out.splitlines():
        if line.startswith(("HYDRA replay", "cycles", "orders", "fills", "P&L", "agent")):
            print("  " + " ".join(line.split()))


if __name__ == "__main__":
    main()
