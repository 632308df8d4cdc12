"""`hydra-tui serve`: the same Textual app in a browser, served on loopback only by textual-serve,
so an operator can look in from a laptop through an SSH tunnel (ssh -L 8566:127.0.0.1:8566 host)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

HOST = "127.0.0.1"
DEFAULT_PORT = 8566


def app_command(app_args: Sequence[str]) -> str:
    """The command line each browser session runs: this interpreter's hydra-tui with the user's options."""
    return " ".join(shlex.quote(a) for a in (sys.executable, "-m", "hydra_tui.cli", *app_args))


def serve(port: int = DEFAULT_PORT, app_args: Sequence[str] = ()) -> int:
    """Serve until interrupted. Binds 127.0.0.1 only: the app can trade, so it is never on a public address."""
    from textual_serve.server import Server

    server = Server(app_command(app_args), host=HOST, port=port, title="HYDRA")
    server.serve()
    return 0
