"""`hydra-tui` entry point: argument parsing only. No engine module is imported to build the
parser (``hydra-tui --help`` stays quick); each command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import NoReturn, Sequence

SIM_HELP = "run the embedded paper exchange standalone (hydra-tui sim --help for its options)"


class HydraParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _store_options(p: argparse.ArgumentParser) -> None:
    """Which store a command reads or changes."""
    p.add_argument("--config", type=Path, help="settings file (TOML; default <data dir>/hydra.toml when present)")
    p.add_argument("--data-dir", type=Path, help="data directory (default $HYDRA_HOME or ~/.hydra)")
    p.add_argument("--broker", choices=("sim", "ib"),
                   help="whose store: the embedded exchange's (sim) or an IB account's (default: the only store there)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set broker.account=DU1234567")


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="settings file (TOML)")
    p.add_argument("--data-dir", type=Path, help="data directory (default $HYDRA_HOME or ~/.hydra)")
    p.add_argument("--broker", choices=("sim", "ib"), help="embedded exchange (default) or an IB Gateway")
    p.add_argument("--port", type=int, help="IB Gateway port (with --broker ib; 4002 paper, 4001 live)")
    p.add_argument("--client-id", type=int, help="fixed API client id (never 0)")
    p.add_argument("--seed", type=int, help="embedded exchange seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting by its dotted key, e.g. --set risk.max_contracts=3")
    _csv_markets(p)


def _csv_markets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--market", dest="market_csv", action="append", default=[], metavar="NAME=PATH.csv",
                   help="embedded exchange: a market priced from your daily OHLCV or close-only CSV (repeatable)")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")


def _timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait for a running engine's answer (default 30)")


def _market(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--market", metavar="SYMBOL", help=what)


def build_parser() -> HydraParser:
    from hydra_tui.commands.status import RULES

    parser = HydraParser(
        prog="hydra-tui",
        description="HYDRA: a self-healing daily futures trading system, operated from a terminal. Without a "
                    "command: the terminal app on the embedded exchange (--no-ui: the same engine headless).",
    )
    _engine_options(parser)
    parser.add_argument("--no-ui", action="store_true", help="run the same engine headless")
    parser.add_argument("--days", type=int, default=None, help="embedded exchange: stop after N trading days")
    parser.add_argument("--day-seconds", type=float, default=None,
                        help="embedded exchange: real seconds per simulated day (default runner.lockstep_delay_s; "
                             "0 with --days when headless)")
    parser.add_argument("--yes-i-mean-live", action="store_true", help="headless confirmation of a live port")
    parser.add_argument("--new-exchange", action="store_true",
                        help="embedded exchange: start a new simulated account on purpose beside an existing store")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("status", help="is the engine on this store up? exit 0 healthy, 1 degraded, 2 down",
                       description="Health of the engine on a store, for people and for systemd or cron.\n\n" + RULES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _store_options(p)
    _json(p)
    p.set_defaults(run="status")

    p = sub.add_parser("diagnose", help="per market: detectors against thresholds, the last diagnosis with evidence")
    _store_options(p)
    _market(p, "only this market's agent")
    _json(p)
    p.set_defaults(run="diagnose")

    p = sub.add_parser("journal", help="the agent's and the operator's journal merged, newest first")
    _store_options(p)
    p.add_argument("--type", help="entry type: observation, diagnosis, hypothesis, experiment, decision, rollback, "
                                  "data_quality, control, error (agent) or command, position_change, safety, note, alert, "
                                  "retention, fill_conflict (operator)")
    p.add_argument("--outcome", help="an agent outcome (alarm, promoted, failed_gate...) or an operator command (pause...)")
    p.add_argument("--since", metavar="DATE", help="entries on or after this date (ISO, e.g. 2018-03-15)")
    p.add_argument("--limit", type=int, default=50, help="most entries shown (default 50)")
    _market(p, "only entries about this market")
    _json(p)
    p.set_defaults(run="journal")

    p = sub.add_parser("approve", help="promote the candidate awaiting approval")
    _store_options(p)
    _market(p, "the market whose candidate is approved (needed when several wait)")
    _timeout(p)
    p.set_defaults(run="control", control="approve")

    p = sub.add_parser("rollback", help="put the previous champion back")
    _store_options(p)
    _market(p, "the market whose champion is rolled back (needed when each market has its own)")
    p.add_argument("--reason", help="why (journalled)")
    _timeout(p)
    p.set_defaults(run="control", control="rollback")

    p = sub.add_parser("pause", help="no new orders or experiments; observation continues (persisted)")
    _store_options(p)
    p.add_argument("--reason", help="why (journalled, shown by status)")
    _timeout(p)
    p.set_defaults(run="control", control="pause")

    p = sub.add_parser("resume", aliases=["run"], help="trade and experiment again after a pause")
    _store_options(p)
    _timeout(p)
    p.set_defaults(run="control", control="resume")

    p = sub.add_parser("reset-peak", help="reset the persisted equity peak (after a deposit or an account reset)")
    _store_options(p)
    p.add_argument("--to", type=float, metavar="X", help="new peak in account currency (default: net liquidation now)")
    p.add_argument("--reason", help="why (journalled)")
    _timeout(p)
    p.set_defaults(run="control", control="reset-peak")

    p = sub.add_parser("flatten", help="cancel working orders and close every position through the risk gate")
    _store_options(p)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _timeout(p)
    p.set_defaults(run="control", control="flatten")

    p = sub.add_parser("fill-report", help="fills and the slippage reconciliation per market")
    _store_options(p)
    p.add_argument("--symbol", help="one market's fills")
    p.add_argument("--since", metavar="DATE", help="fills at or after this ISO date or datetime (UTC)")
    p.add_argument("--limit", type=int, default=20, help="most fills shown (default 20)")
    p.add_argument("--reconcile", action="store_true", help="add the reconciliation panels")
    _json(p)
    p.set_defaults(run="fill-report")

    p = sub.add_parser("paper-trade", help="start the headless engine on an IB paper port, or stop a running engine")
    p.add_argument("action", choices=("start", "stop"))
    p.add_argument("--config", type=Path, help="settings file (TOML)")
    p.add_argument("--data-dir", type=Path, help="data directory (default $HYDRA_HOME or ~/.hydra)")
    p.add_argument("--port", type=int, help="IB Gateway port (start; default 4002 paper; 4001 and 7496 are live)")
    p.add_argument("--client-id", type=int, help="fixed API client id (start; never 0)")
    p.add_argument("--broker", choices=("sim", "ib"), help="stop: only an engine on this broker's store")
    p.add_argument("--yes-i-mean-live", action="store_true", help="start: confirm a live port (real money)")
    p.add_argument("--timeout", type=float, default=90.0, metavar="S", help="stop: seconds to wait (default 90)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting by its dotted key")
    p.set_defaults(run="paper-trade")

    p = sub.add_parser("replay", help="lock-step run on the embedded exchange, then a report")
    p.add_argument("--days", type=int, default=20, help="trading days to play (default 20)")
    p.add_argument("--markets", metavar="A,B", help="only these of the configured markets")
    p.add_argument("--seed", type=int, help="embedded exchange seed (default 7)")
    p.add_argument("--data-dir", type=Path, help="keep the store here (default: a temporary store, removed after)")
    p.add_argument("--config", type=Path, help="settings file (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set agent.enabled=false")
    _csv_markets(p)
    p.add_argument("--keep-store", action="store_true", help=argparse.SUPPRESS)  # before --data-dir kept it
    _json(p)
    p.set_defaults(run="replay")

    p = sub.add_parser("sim", help=SIM_HELP, add_help=False)  # its options are parsed when it runs
    p.set_defaults(run="sim")

    p = sub.add_parser("serve", help="serve the app to a browser on 127.0.0.1 (textual-serve; tunnel it over SSH)")
    p.add_argument("--port", type=int, default=8566, help="loopback port to listen on (default 8566)")
    p.add_argument("--config", type=Path, help="settings file (TOML) for the served app")
    p.add_argument("--data-dir", type=Path, help="data directory for the served app")
    p.add_argument("--day-seconds", type=float, help="embedded exchange: real seconds per simulated day")
    p.set_defaults(run="serve")
    return parser


def sim_parser() -> HydraParser:
    """``hydra-tui sim``'s own parser (it imports the exchange's argument definitions)."""
    from hydra_engine.sim.standalone import add_arguments

    p = HydraParser(prog="hydra-tui sim", description="The embedded paper exchange as a standalone server on "
                    "loopback, for any TWS API client. Serves until SIGINT or SIGTERM, then saves its state.")
    add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    command = getattr(args, "run", None)
    if command in (None, "sim"):  # the long-running processes: before any thread or array exists
        from hydra_tui.process_memory import tune_malloc

        tune_malloc()
    if command == "sim":
        from hydra_engine.sim.standalone import run as run_sim

        return asyncio.run(run_sim(sim_parser().parse_args(extra)))
    if extra:
        prog = f"hydra-tui {args.command}" if getattr(args, "command", None) else "hydra-tui"
        parser.exit(2, f"{prog}: unrecognized arguments: {' '.join(extra)} (see {prog} --help)\n")
    if command is None:
        if not args.no_ui:
            from hydra_tui.app import run_tui

            return run_tui(args)
        from hydra_tui.headless import run_headless

        return run_headless(args)
    if command == "serve":
        from hydra_tui.serve import serve as serve_app

        app_args = [x for k in ("config", "data_dir", "day_seconds") if (v := getattr(args, k)) is not None
                    for x in (f"--{k.replace('_', '-')}", str(v))]
        return serve_app(args.port, app_args)
    if command == "paper-trade" and args.action == "start":
        from hydra_tui.commands.paper_trade import start

        return start(args)
    return _run_command(command, args)


def _run_command(command: str, args: argparse.Namespace) -> int:
    from hydra_tui.commands import common

    if command == "status":
        from hydra_tui.commands.status import main as status

        return common.run(command, status, args)
    if command == "diagnose":
        from hydra_tui.commands.diagnose import main as diagnose

        return common.run(command, diagnose, args)
    if command == "journal":
        from hydra_tui.commands.journal import main as journal

        return common.run(command, journal, args)
    if command == "fill-report":
        from hydra_tui.commands.fill_report import main as fill_report

        return common.run(command, fill_report, args)
    if command == "replay":
        from hydra_tui.commands.replay import main as replay

        return common.run(command, replay, args)
    if command == "paper-trade":
        from hydra_tui.commands.paper_trade import stop

        return common.run("paper-trade stop", stop, args)
    if command == "control":
        from hydra_tui.commands.control import main as control

        name = args.control

        async def body(a: argparse.Namespace) -> int:
            return await control(a, name)

        return common.run(name, body, args)
    raise AssertionError(f"no handler for {command!r}")


if __name__ == "__main__":
    sys.exit(main())
