"""``hydra-tui sim``: the embedded exchange as a standalone server (for soak and crash tests, or
to point any TWS API client at). Serves until SIGINT/SIGTERM, then persists its state."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
from pathlib import Path

import structlog

from .faults import FaultSpecError, parse_faults
from .state_file import StateFileError, load_state

log = structlog.get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=4002,
                        help="TCP port on 127.0.0.1 (default 4002, where HYDRA's IB paper mode looks; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (other hosts are refused)")
    parser.add_argument("--seed", type=int, default=7, help="market universe and fault seed (default 7)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second: 1 = wall clock (default); >1 runs from --start")
    parser.add_argument("--start", default=None,
                        help="simulated start (ISO date or datetime, UTC) for --speed != 1; default: the universe's")
    parser.add_argument("--faults", default=None, metavar="SPEC", help="fault spec (see hydra_engine/sim/FAULTS.md)")
    parser.add_argument("--state", type=Path, default=None, metavar="FILE",
                        help="persist account, orders and clock here and resume from it")
    parser.add_argument("--accounts", default="DU1234567", help="comma-separated paper account ids")
    parser.add_argument("--cash", type=float, default=1_000_000.0, help="starting cash per account (USD)")
    parser.add_argument("--max-server-version", type=int, default=178, choices=range(157, 179), metavar="157..178")
    parser.add_argument("--no-pacing", action="store_true", help="disable historical-data pacing (error 162)")
    parser.add_argument("--trade-log-days", type=int, default=1, choices=range(1, 8), metavar="1..7",
                        help="days of executions replayed to a reconnecting client (IB Gateway's trade log; default 1: today)")


def _parse_start(text: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start {text!r} is not an ISO date or datetime (e.g. 2018-03-01 or 2018-03-01T15:00)") from None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM. Exit code 0 after a clean stop, 2 on bad arguments."""
    from .clock import SimClock
    from .exchange_server import EmbeddedExchange
    from .universe import build_universe

    try:
        parse_faults(args.faults)
        if not 0 < args.speed <= 1_000_000:
            raise ValueError(f"--speed {args.speed} outside (0, 1000000]")
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port {args.port} outside 0..65535")
        accounts = [a.strip() for a in str(args.accounts).split(",") if a.strip()]
        saved = load_state(args.state) if args.state else None
        universe = await asyncio.to_thread(build_universe, args.seed)
        if args.speed == 1.0 and not args.start:
            clock = SimClock.realtime()
        else:
            start = _parse_start(args.start) if args.start else universe.default_clock_start()
            if saved:  # a restart resumes its clock; --start may move it forward, never back
                resumed = dt.datetime.fromisoformat(saved["clock"])
                if args.start and start < resumed:
                    log.warning("sim_start_before_saved_clock", start=start.isoformat(), resumed=resumed.isoformat(),
                                detail="the state file's clock is later: resuming from it (time never runs back)")
                start = max(start, resumed) if args.start else resumed
            clock = SimClock.fixed_speed(start, args.speed)
        ex = await EmbeddedExchange.start(
            host=args.host, port=args.port, seed=args.seed, clock=clock, universe=universe,
            faults=args.faults, state_path=args.state, accounts=accounts, starting_cash=args.cash,
            max_server_version=args.max_server_version, pacing=not args.no_pacing,
            trade_log_days=getattr(args, "trade_log_days", 1),
        )  # fmt: skip
    except (ValueError, FaultSpecError, StateFileError, OSError) as exc:
        log.error("sim_standalone_bad_start", error=str(exc))
        return 2
    log.info("sim_standalone_listening", host=ex.host, port=ex.port, speed=args.speed,
             now=ex.clock.now().isoformat(), state=str(args.state) if args.state else None)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform without signals
            pass
    try:
        await stop.wait()
    finally:
        log.info("sim_standalone_stopping", port=ex.port)
        await ex.stop()
    return 0
