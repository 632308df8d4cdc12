"""Idle CPU of the TUI in real time, and its RSS after long lock-step trading.

Part 1, idle CPU: a standalone exchange (``hydra-tui sim --speed 1``: wall-clock time) and
``hydra-tui --broker ib --port P`` against it in a private tmux server at 160x50 (real-time mode:
APScheduler waits for each market's next decision, hours away). Once the app shows its first
figures and the start-up catch-up has settled, the CPU time of the app's process over a window is
divided by the window. Goal: < 3 %.

Part 2, RSS: ``hydra-tui --day-seconds 0`` (lock-step days back to back, agent on) for a fixed wall
time (``--minutes``, default 60; "an hour of trading" is taken as that much wall time at full
speed, and the simulated days it covered are printed). The app's RSS is sampled every 5 s; the
experiment subprocesses (the app's child processes) are reported apart. Goal: app < 300 MB.

Usage: python bench/tui_idle.py [--idle-window 30] [--minutes 60] [--skip-rss] [--skip-idle]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

HYDRA_TUI = str(Path(sys.executable).with_name("hydra-tui"))
NET_LIQ = re.compile(r"Net liq\s+[\d,]+\.\d\d")


class Tmux:
    """A private tmux server running one command at 160x50."""

    def __init__(self, command: str) -> None:
        self.session = f"hydra-bench-{uuid.uuid4().hex[:8]}"
        self.sock = ["-L", self.session]
        env = "-u COLUMNS -u LINES TERM=xterm-256color"
        subprocess.run(["tmux", *self.sock, "new-session", "-d", "-s", self.session, "-x", "160", "-y", "50",
                        f"env {env} {command}"], check=True, timeout=10)
        pane = subprocess.run(["tmux", *self.sock, "display-message", "-p", "-t", self.session, "#{pane_pid}"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        self.proc = psutil.Process(int(pane))  # env execs hydra-tui: the pane's process is the app

    def screen(self) -> str:
        return subprocess.run(["tmux", *self.sock, "capture-pane", "-p", "-t", self.session], capture_output=True,
                              text=True, timeout=10).stdout

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not pattern.search(self.screen()):
            if time.monotonic() > deadline:
                raise SystemExit(f"the app never showed {pattern.pattern!r}; screen:\n{self.screen()}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", *self.sock, "send-keys", "-t", self.session, "q"], capture_output=True, timeout=10)
        deadline = time.monotonic() + 30
        while self.proc.is_running() and time.monotonic() < deadline:
            text = self.screen()
            if "Quit with working orders" in text:
                subprocess.run(["tmux", *self.sock, "send-keys", "-t", self.session, "y"], capture_output=True,
                               timeout=10)
            time.sleep(0.5)
        subprocess.run(["tmux", *self.sock, "kill-server"], capture_output=True, timeout=10)
        (Path(f"/tmp/tmux-{os.getuid()}") / self.sock[-1]).unlink(missing_ok=True)  # tmux leaves its socket file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def idle_cpu(window: float) -> None:
    data = Path(tempfile.mkdtemp(prefix="hydra-idle-"))
    port = free_port()
    sim = subprocess.Popen([HYDRA_TUI, "sim", "--port", str(port), "--speed", "1", "--state", str(data / "sim.json")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the standalone exchange did not listen within 30 s") from None
                time.sleep(0.2)
        app = Tmux(f"{HYDRA_TUI} --broker ib --port {port} --data-dir {data}")
        app.wait_for(NET_LIQ, 120)
        time.sleep(15.0)  # let the start-up catch-up cycle and the bootstrap settle
        sim_p = psutil.Process(sim.pid)
        a0, s0, t0 = cpu_s(app.proc), cpu_s(sim_p), time.perf_counter()
        time.sleep(window)
        a1, s1, t1 = cpu_s(app.proc), cpu_s(sim_p), time.perf_counter()
        header = app.screen().splitlines()[0].strip()
        print(f"Idle CPU, real time (hydra-tui --broker ib against hydra-tui sim --speed 1), {t1 - t0:.0f} s window")
        print(f"  app (Textual + engine)   {100 * (a1 - a0) / (t1 - t0):5.2f} % of one core   goal < 3 %")
        print(f"  standalone exchange      {100 * (s1 - s0) / (t1 - t0):5.2f} % (reported apart)")
        print(f"  app RSS                  {app.proc.memory_info().rss / 2**20:5.0f} MB")
        print(f"  header: {header}")
    finally:
        if app is not None:
            app.close()
        sim.terminate()
        sim.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def rss_after(minutes: float) -> None:
    data = Path(tempfile.mkdtemp(prefix="hydra-rss-"))
    app = Tmux(f"{HYDRA_TUI} --data-dir {data} --day-seconds 0")
    try:
        app.wait_for(NET_LIQ, 120)
        first = app.proc.memory_info().rss
        peak_app = peak_children = 0
        t0 = time.perf_counter()
        end = t0 + minutes * 60
        marks: list[tuple[float, int]] = []  # (minute, RSS) every 10 minutes: the trend, not only the end
        while time.perf_counter() < end:
            if not app.proc.is_running():
                raise SystemExit("the app ended during the run")
            rss = app.proc.memory_info().rss
            peak_app = max(peak_app, rss)
            minute = (time.perf_counter() - t0) / 60
            if minute >= 10 * (len(marks) + 1):
                marks.append((minute, rss))
                print(f"  {minute:5.1f} min: app RSS {rss / 2**20:.0f} MB", flush=True)
            kids = 0
            for c in app.proc.children(recursive=True):
                try:
                    kids += c.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            peak_children = max(peak_children, kids)
            time.sleep(5.0)
        last = app.proc.memory_info().rss
        # the log rotates at 10 MB: count over the rotated files too
        text = "".join(f.read_text(errors="replace") for f in sorted(data.glob("sim-*/hydra.log*")))
        days = text.count("event='lockstep.day'")
        experiments = text.count("event='experiment.started'")
        wall = time.perf_counter() - t0
        print(f"RSS, lock-step trading at --day-seconds 0 for {wall / 60:.1f} min of wall time (agent on)")
        print(f"  simulated days played     {days} ({days / (wall / 60):.1f} per minute); experiments started {experiments}")
        print(f"  app RSS at first figures  {first / 2**20:6.0f} MB")
        print(f"  app RSS at the end        {last / 2**20:6.0f} MB   goal < 300 MB")
        print(f"  app RSS peak              {peak_app / 2**20:6.0f} MB")
        if marks:
            print("  app RSS every 10 min      " + ", ".join(f"{r / 2**20:.0f}" for _, r in marks) + " MB")
        print(f"  experiment subprocesses   {peak_children / 2**20:6.0f} MB peak, summed (reported apart)")
    finally:
        app.close()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle-window", type=float, default=30.0, help="seconds of idle CPU measured")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall minutes of lock-step trading for the RSS")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed (apt-get install tmux)")
    print(f"{os.cpu_count()} CPUs")
    if not args.skip_idle:
        idle_cpu(args.idle_window)
    if not args.skip_rss:
        rss_after(args.minutes)


if __name__ == "__main__":
    main()
