"""Wall time of ``hydra-tui --help`` (goal < 0.3 s), beside ``python -c pass`` on the same machine.

Each run is a fresh interpreter (what a person typing the command waits for): the installed
``hydra-tui`` console script when it is on PATH next to this interpreter, else ``python -m
hydra_tui.cli``. Runs alternate between the two commands so machine noise hits both alike. Also
checks, once, that ``--help`` imported no ``hydra_engine`` module. Figures only; never fails a build.

    .venv/bin/python bench/cli_help.py [--n 21]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main(n: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = Path(sys.executable).with_name("hydra-tui")
    help_cmd = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "hydra_tui.cli", "--help"]
    if not script.exists() and shutil.which("hydra-tui"):
        help_cmd = [str(shutil.which("hydra-tui")), "--help"]
    bare = [sys.executable, "-c", "pass"]
    _wall(help_cmd, env)  # warm the file cache once
    _wall(bare, env)
    helps, bares = [], []
    for _ in range(n):
        helps.append(_wall(help_cmd, env))
        bares.append(_wall(bare, env))
    probe = ("import sys\nfrom hydra_tui.cli import build_parser\ntry:\n    build_parser().parse_args(['--help'])\n"
             "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith('hydra_engine')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    engine_modules = out.stdout.strip().splitlines()[-1]

    def row(name: str, xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=10)
        return f"{name:<24} median {1000 * statistics.median(xs):7.1f} ms   p10 {1000 * q[0]:7.1f} ms   p90 {1000 * q[-1]:7.1f} ms"

    print(f"{n} runs of each, alternating: {' '.join(help_cmd)}  /  {' '.join(bare)}")
    print(row("hydra-tui --help", helps))
    print(row("python -c pass", bares))
    print(f"hydra-tui --help minus python -c pass: {1000 * (statistics.median(helps) - statistics.median(bares)):.1f} ms "
          f"(goal: hydra-tui --help < 300 ms)")
    print(f"hydra_engine modules imported by --help: {engine_modules}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=21, help="runs of each command (default 21)")
    main(ap.parse_args().n)
