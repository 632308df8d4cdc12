"""`hydra-tui` entry point: argument parsing only; every heavy import happens inside the command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Sequence


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="settings file (TOML)")
    p.add_argument("--data-dir", type=Path, help="data directory (default $HYDRA_HOME or ~/.hydra)")
    p.add_argument("--broker", choices=("sim", "ib"), help="embedded exchange (default) or an IB Gateway")
    p.add_argument("--port", type=int, help="IB Gateway port (with --broker ib; 4002 paper, 4001 live)")
    p.add_argument("--client-id", type=int, help="fixed API client id (never 0)")
    p.add_argument("--seed", type=int, help="embedded exchange seed")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting by its dotted key, e.g. --set risk.max_contracts=3",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hydra-tui",
        description="HYDRA: a self-healing daily futures trading system, operated from a terminal.",
    )
    _add_engine_options(parser)
    parser.add_argument("--no-ui", action="store_true", help="run the same engine headless")
    parser.add_argument("--days", type=int, default=None, help="embedded exchange: stop after N trading days")
    parser.add_argument("--day-seconds", type=float, default=None,
                        help="embedded exchange in the app: real seconds per simulated day (default runner.lockstep_delay_s)")
    parser.add_argument("--yes-i-mean-live", action="store_true", help="headless confirmation of a live port")
    parser.add_argument("--new-exchange", action="store_true",
                        help="embedded exchange: start a new simulated account on purpose beside an existing store")
    sub = parser.add_subparsers(dest="command")

    sim = sub.add_parser("sim", help="run the embedded paper exchange standalone")
    from hydra_engine.sim.standalone import add_arguments as add_sim_arguments

    add_sim_arguments(sim)

    replay = sub.add_parser("replay", help="lock-step run on the embedded exchange, then a report")
    _add_engine_options(replay)
    replay.add_argument("--days", type=int, default=20, help="trading days to play (default 20)")
    replay.add_argument("--keep-store", action="store_true", help="use the data dir instead of a temporary store")

    report = sub.add_parser("fill-report", help="fills and the slippage reconciliation from the store")
    _add_engine_options(report)
    report.add_argument("--symbol")
    report.add_argument("--since", help="ISO date")
    report.add_argument("--limit", type=int, default=20)
    report.add_argument("--reconcile", action="store_true")

    serve = sub.add_parser("serve", help="serve the app to a browser on 127.0.0.1 (textual-serve; tunnel it over SSH)")
    serve.add_argument("--port", type=int, default=8566, help="loopback port to listen on (default 8566)")
    serve.add_argument("--config", type=Path, help="settings file (TOML) for the served app")
    serve.add_argument("--data-dir", type=Path, help="data directory for the served app")
    serve.add_argument("--day-seconds", type=float, help="embedded exchange: real seconds per simulated day")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sim":
        from hydra_engine.sim.standalone import run as run_sim

        return asyncio.run(run_sim(args))
    if args.command == "replay":
        from hydra_tui.commands import replay

        return asyncio.run(replay(args))
    if args.command == "fill-report":
        from hydra_tui.commands import fill_report

        return asyncio.run(fill_report(args))
    if args.command == "serve":
        from hydra_tui.serve import serve as serve_app

        app_args = [x for k in ("config", "data_dir", "day_seconds") if (v := getattr(args, k)) is not None
                    for x in (f"--{k.replace('_', '-')}", str(v))]
        return serve_app(args.port, app_args)
    if not args.no_ui:
        from hydra_tui.app import run_tui

        return run_tui(args)
    from hydra_tui.headless import run_headless

    return run_headless(args)


if __name__ == "__main__":
    sys.exit(main())
