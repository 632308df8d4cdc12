"""Persistence of the exchange's own state (account, positions, orders, the day's executions,
clock), so a restarted ``hydra-tui`` finds the same simulated account, as with a real gateway.

One JSON file, written atomically (temp file in the same directory, fsync, rename): a crash
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from .account import Account
from .orders import ACTIVE, STAGED, Execution, WorkingOrder

if TYPE_CHECKING:
    from .exchange_server import EmbeddedExchange

log = structlog.get_logger(__name__)

STATE_VERSION = 1


class StateFileError(ValueError):
    """A state file that cannot be read back; names the file and what is wrong."""


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically replace ``path`` with ``state`` as JSON (blocking: call via a thread)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"version": STATE_VERSION, **state}, indent=1, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # directory fsync is best effort (not supported everywhere)
        pass


def load_state(path: Path) -> dict[str, Any] | None:
    """The saved state, None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path}: cannot read exchange state: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise StateFileError(f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise StateFileError(f"{path}: top level must be an object")
    v = data.get("version")
    if v != STATE_VERSION:
        raise StateFileError(f"{path}: state version {v!r} not supported (expected {STATE_VERSION})")
    for key in ("clock", "accounts", "orders", "executions", "counters"):
        if key not in data:
            raise StateFileError(f"{path}: missing key {key!r}")
    try:
        clock = dt.datetime.fromisoformat(str(data["clock"]))
    except ValueError:
        raise StateFileError(f"{path}: key 'clock' = {data['clock']!r} is not an ISO datetime") from None
    if clock.tzinfo is None:
        raise StateFileError(f"{path}: key 'clock' = {data['clock']!r} has no time zone (expected UTC)")
    return data


def exchange_state(ex: EmbeddedExchange) -> dict[str, Any]:
    """Account (with each contract's day ledger), positions, working and staged orders (stop
    triggers, bracket links, OCA groups and shrunk sizes included), the day's executions and their
    orders, clock, counters."""
    today = ex.executions_today()
    keep = {(e.client_id, e.order_id) for e in today}
    return {
        "clock": ex.clock.now().isoformat(),
        "last_played": ex.last_played.isoformat(),
        "seed": ex.seed,
        "accounts": [a.to_dict() for a in ex.account_book],
        "orders": [o.to_dict() for k, o in ex.book.orders.items()
                   if o.status in ACTIVE or o.status == STAGED or k in keep],  # fmt: skip
        "executions": [e.to_dict() for e in today],
        "counters": {
            "next_perm_id": ex.book.next_perm_id,
            "exec_seq": ex.book.exec_seq,
            "exec_prefix": ex.book.exec_prefix,
            "max_order_id": {str(k): v for k, v in ex.book.max_order_id.items()},
        },
        "faults": ex.faults.state(),
    }


def restore_exchange(ex: EmbeddedExchange, d: dict[str, Any]) -> dt.datetime:
    """Load a saved state into a freshly built exchange (before it listens); returns the time up to
    which the saved exchange had played, for the exchange to resume from."""
    if d.get("seed") not in (None, ex.seed):
        log.warning("sim_state_seed_differs", saved_seed=d.get("seed"), seed=ex.seed,
                    detail="positions resume, but prices now come from a different universe")  # fmt: skip
    try:
        for a in d["accounts"]:
            acct = Account.from_dict(a)
            if not ex.account_book.restore(acct):
                log.warning("sim_state_account_dropped", account=acct.account_id, managed=ex.accounts)
        ex.book.accounts = ex.account_book.accounts
        for od in d["orders"]:
            o = WorkingOrder.from_dict(od)
            ex.book.orders[(o.client_id, o.order_id)] = o
        ex.book.executions = [Execution.from_dict(e) for e in d["executions"]]
        c = d["counters"]
        ex.book.next_perm_id = int(c["next_perm_id"])
        ex.book.exec_seq = int(c["exec_seq"])
        ex.book.exec_prefix = str(c.get("exec_prefix", ex.book.exec_prefix))
        ex.book.max_order_id = {int(k): int(v) for k, v in c.get("max_order_id", {}).items()}
        ex.faults.restore(d.get("faults", {}))
        last = dt.datetime.fromisoformat(d.get("last_played", d["clock"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"{ex.state_path}: exchange state is incomplete or corrupt: {exc!r}") from exc
    return min(last, ex.clock.now()) if ex.lockstep else last
