"""Launch to first full frame: ``hydra-tui`` in a real terminal (a private tmux server at 160x50).

Each run starts ``hydra-tui --data-dir <fresh dir>`` in a new tmux pane and reads the screen with
``capture-pane`` every 10 ms from the moment the process is spawned, recording when the frame first
shows (1) the SIM badge and every pane's title (the first full frame), and (2) the engine's first
figures (a net liquidation value in the account pane). The poll adds up to ~10 ms plus one capture.
Runs are sequential on fresh data dirs (a new store and simulated account each time). Goal for (1):
< 1.5 s on 2 cores.

Usage: python bench/tui_launch.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HYDRA_TUI = str(Path(sys.executable).with_name("hydra-tui"))
TITLES = ("Account", "Positions", "Working orders", "Agent", "Fills", "Log")
NET_LIQ = re.compile(r"Net liq\s+[\d,]+\.\d\d")


def one_run() -> tuple[float | None, float | None]:
    session = f"hydra-launch-{uuid.uuid4().hex[:8]}"
    sock = ["-L", session]
    data = tempfile.mkdtemp(prefix="hydra-launch-")
    env = "-u COLUMNS -u LINES TERM=xterm-256color"
    try:
        t0 = time.perf_counter()
        subprocess.run(["tmux", *sock, "new-session", "-d", "-s", session, "-x", "160", "-y", "50",
                        f"env {env} {HYDRA_TUI} --data-dir {data} --day-seconds 5"], check=True, timeout=10)
        frame = figures = None
        deadline = t0 + 60
        while time.perf_counter() < deadline and figures is None:
            text = subprocess.run(["tmux", *sock, "capture-pane", "-p", "-t", session], capture_output=True,
                                  text=True, timeout=10).stdout
            now = time.perf_counter() - t0
            if frame is None and " SIM " in text and all(t in text for t in TITLES):
                frame = now
            if frame is not None and NET_LIQ.search(text):
                figures = now
            time.sleep(0.01)
        return frame, figures
    finally:
        subprocess.run(["tmux", *sock, "send-keys", "-t", session, "q"], capture_output=True, timeout=10)
        time.sleep(1.0)
        subprocess.run(["tmux", *sock, "kill-server"], capture_output=True, timeout=10)
        (Path(f"/tmp/tmux-{os.getuid()}") / sock[-1]).unlink(missing_ok=True)  # tmux leaves its socket file
        shutil.rmtree(data, ignore_errors=True)


def show(name: str, xs: list[float]) -> str:
    if not xs:
        return f"{name:34s} never seen"
    return (f"{name:34s} median {statistics.median(xs):5.2f} s   min {min(xs):5.2f}   max {max(xs):5.2f}   "
            f"(n={len(xs)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed (apt-get install tmux)")
    frames, figures = [], []
    for i in range(args.runs):
        f, g = one_run()
        print(f"run {i + 1}: first full frame {f if f is None else round(f, 2)} s, engine figures "
              f"{g if g is None else round(g, 2)} s", flush=True)
        if f is not None:
            frames.append(f)
        if g is not None:
            figures.append(g)
    print(f"\nhydra-tui launch at 160x50 in tmux, {os.cpu_count()} CPUs, fresh data dir per run")
    print(show("first full frame (SIM + panes)", frames) + "   goal < 1.5 s")
    print(show("engine's first figures (net liq)", figures))


if __name__ == "__main__":
    main()
