"""``hydra-tui paper-trade start|stop``: the headless engine on an IB Gateway paper port, and
stopping whatever engine runs on a store.

``start`` shows the plan's panel (mode and port; live ports in red) and runs the same engine as
``hydra-tui --no-ui --broker ib`` until SIGINT, SIGTERM or SIGHUP. The live ports (4001, 7496) are
refused without ``--yes-i-mean-live``, and even then the engine's own checks stand (``trading_mode
= "live"`` and ``HYDRA_LIVE_CONFIRMED=true``). ``stop`` sends SIGTERM to the process that holds the
store's lock (the engine's PID is in the lock and in its status snapshot) and waits until the lock
is released, i.e. until the engine has stopped cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time

from hydra_tui.commands import common
from hydra_tui.commands.store_reader import StoreTarget, stores_in

LIVE_PORTS = (4001, 7496)
PAPER_PORTS = (4002, 7497)
DEFAULT_PORT = 4002
DEFAULT_STOP_TIMEOUT_S = 90.0


def start(args: argparse.Namespace) -> int:
    """Show the panel, refuse a live port without the flag, then run the headless engine."""
    from rich.panel import Panel
    from rich.text import Text

    from hydra_tui.commands.report_tables import kv_table

    port = DEFAULT_PORT if args.port is None else int(args.port)
    if not 0 < port <= 65535:
        sys.stderr.write(f"hydra-tui paper-trade start: --port {port}: outside 1..65535\n")
        return common.EXIT_REFUSED
    live = port in LIVE_PORTS
    out = common.console()
    if live and not getattr(args, "yes_i_mean_live", False):
        out.print(Panel(Text(f"Port {port} is a LIVE trading port: real money.\nRefused without --yes-i-mean-live "
                             "(and the engine also needs trading_mode = \"live\" and HYDRA_LIVE_CONFIRMED=true).",
                             style="bold red"), title="HYDRA LIVE", border_style="red", expand=False))
        sys.stderr.write(f"hydra-tui paper-trade start: port {port} is live; add --yes-i-mean-live to trade real money\n")
        return common.EXIT_REFUSED
    mode = Text("LIVE" if live else "PAPER", style="bold white on red" if live else "bold green")
    rows = [("mode", mode), ("port", f"{port} ({'live' if live else 'paper' if port in PAPER_PORTS else 'custom'})"),
            ("client id", str(args.client_id) if args.client_id is not None else "from the settings"),
            ("data dir", str(args.data_dir) if args.data_dir else "$HYDRA_HOME or ~/.hydra"),
            ("stop", "Ctrl-C, or hydra-tui paper-trade stop (SIGTERM: working orders cancelled, state saved)")]
    out.print(Panel(kv_table(rows), title="HYDRA paper trading" if not live else "HYDRA LIVE trading",
                    border_style="red" if live else "green", expand=False))
    sys.stdout.flush()
    from hydra_tui.headless import run_headless

    args.broker, args.port = "ib", port
    args.no_ui, args.days, args.new_exchange = True, None, False
    return run_headless(args)


async def stop(args: argparse.Namespace) -> int:
    """SIGTERM to the engine holding the store's lock; wait for the lock to be released."""
    common.quiet_logging()
    settings = common.settings_for(args)
    data_dir = settings.data_dir(getattr(args, "data_dir", None))
    running = [(s, pid) for s in stores_in(data_dir) if (pid := s.engine_pid()) is not None]
    if getattr(args, "broker", None):
        running = [(s, p) for s, p in running if s.kind == args.broker]
    if settings.broker.account:
        running = [(s, p) for s, p in running if s.account == settings.broker.account]
    if not running:
        raise common.CommandError(f"no engine runs on a store in {data_dir}")
    if len(running) > 1:
        raise common.CommandError("engines run on several stores (" + ", ".join(f"{s.directory.name} pid {p}" for s, p in running)
                                  + "): name one with --broker and --set broker.account=...")
    target, pid = running[0]
    if pid == os.getpid():
        raise common.CommandError("refusing to signal this very process")
    given = getattr(args, "timeout", None)
    timeout = DEFAULT_STOP_TIMEOUT_S if given is None else float(given)
    if not timeout > 0:
        raise common.CommandError(f"--timeout {timeout:g}: must be a positive number of seconds")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise common.CommandError(f"the engine (pid {pid}) exited before it could be signalled") from None
    except PermissionError:
        raise common.CommandError(f"not allowed to signal the engine (pid {pid}): it runs as another user") from None
    out = common.console()
    out.print(f"SIGTERM sent to the engine on {target.directory.name} (pid {pid}); waiting for it to stop...")
    if await _released(target, timeout):
        out.print(f"stopped: the engine (pid {pid}) released {target.directory}")
        return common.EXIT_OK
    sys.stderr.write(f"hydra-tui paper-trade stop: the engine (pid {pid}) still holds the store after {timeout:g} s "
                     "(a cycle may still be finishing; see hydra-tui status)\n")
    return common.EXIT_FAILED


async def _released(target: StoreTarget, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if target.engine_pid() is None:
            return True
        await asyncio.sleep(0.2)
    return target.engine_pid() is None
