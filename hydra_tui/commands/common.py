"""What every ``hydra-tui`` subcommand shares: the refusal (exit 2, one line on stderr), the actor
name journalled with an operator command, date parsing, and the Rich consoles.

Exit codes: 0 done, 1 failed while doing it (the engine refused, no answer in time), 2 refused
before doing anything (bad argument, no store, unknown market, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
PIPE_WIDTH = 160
"""Columns Rich lays tables out in when stdout is not a terminal (``$COLUMNS`` wins when set)."""


class CommandError(Exception):
    """Bad input or state found before acting: the message is printed as one line, exit 2."""


def actor() -> str:
    """Who is asking, as journalled with the command: ``cli:<login name>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): the uid still says who
        name = f"uid{os.getuid()}"
    return f"cli:{name}"


def parse_date(flag: str, text: str) -> dt.date:
    """An ISO date (or the date part of an ISO datetime) given to ``flag``."""
    try:
        return dt.datetime.fromisoformat(text.strip()).date()
    except ValueError:
        raise CommandError(f"{flag} {text!r}: expected an ISO date such as 2018-03-15") from None


def parse_since(flag: str, text: str) -> dt.datetime:
    """An ISO date or datetime given to ``flag``, as an aware UTC instant (a bare date is midnight UTC)."""
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"{flag} {text!r}: expected an ISO date such as 2018-03-15 "
                           "(or a datetime such as 2018-03-15T14:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def positive_limit(flag: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise CommandError(f"{flag} {value}: must be 1 or more")
    return value


def console(*, stderr: bool = False) -> Console:
    """A Rich console on stdout (or stderr); plain text, wide lines when not a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty():
        try:
            width = int(os.environ.get("COLUMNS", "")) or PIPE_WIDTH
        except ValueError:
            width = PIPE_WIDTH
    return Console(file=stream, width=width, soft_wrap=False, highlight=False)


def quiet_logging() -> None:
    """Engine log lines below WARNING stay out of a command's output (stdout carries the report)."""
    from hydra_tui.headless import configure_logging

    configure_logging("WARNING", None)


def settings_for(args: argparse.Namespace) -> Any:
    """The settings a command reads (``--config``, ``--set``, ``--broker``), bad ones refused."""
    from hydra_engine.config import ConfigError
    from hydra_tui.headless import settings_from_args

    try:
        return settings_from_args(args)
    except (ConfigError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def run(name: str, body: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    """Run ``body(args)`` on a fresh event loop; a ``CommandError`` is one line on stderr and exit 2."""
    try:
        return asyncio.run(_guarded(name, body, args))
    except KeyboardInterrupt:
        sys.stderr.write(f"hydra-tui {name}: interrupted\n")
        return 130


async def _guarded(name: str, body: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    try:
        return await body(args)
    except CommandError as exc:
        text = str(exc).removeprefix(f"{name}: ")  # a message that already names the command
        sys.stderr.write(f"hydra-tui {name}: {text}\n")
        return EXIT_REFUSED


def json_out(data: Any) -> None:
    """``data`` as indented JSON on stdout (dates and dataclasses as plain values)."""
    import json

    from hydra_engine.operator_requests import jsonable

    sys.stdout.write(json.dumps(jsonable(data), indent=2, default=str) + "\n")
