"""Start-up checks of the state the engine finds on disk, before anything trades.

A store and the embedded exchange's state file (``exchange.json``) describe one simulated account
together. Losing or rolling back the state file while the store survives would silently reset the
account (flat, full cash, clock weeks back) under a store that remembers fills and positions, so
both are refused with the two files named and the way to start fresh on purpose. ``StartRefused``
and ``is_refusal`` let every command give exit code 2 for bad input or state and 1 only for a
failure while running.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

EXCHANGE_MARK = "exchange_mark"
"""kv entry: the exchange clock and execution-id prefix last seen with its state file saved."""


class StartRefused(Exception):
    """Bad state found before trading; the message names the files and what to do (exit code 2)."""


def is_refusal(exc: BaseException) -> bool:
    """True for a refusal of bad input or state (exit 2), False for a failure while running (exit 1)."""
    from hydra_engine.config import ConfigError
    from hydra_engine.execution.runner import LiveTradingRefused
    from hydra_engine.paths import DataDirError
    from hydra_engine.sim import StateFileError
    from hydra_engine.store.database import StoreError

    return isinstance(exc, (StartRefused, ConfigError, LiveTradingRefused, StoreError, StateFileError, DataDirError))


def _fresh_hint(store_dir: Path) -> str:
    return (f"To start a new simulated account on purpose, run with --new-exchange (the store's history is "
            f"kept), or move {store_dir} aside for a new store as well.")


async def _count(store: Any, sql: str) -> int:
    async with store.conn.execute(sql) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def check_state_file_present(store: Any, state_path: Path) -> None:
    """Refuse a missing state file beside a store that has seen this exchange's account."""
    if state_path.exists() or store.created:
        return
    fills = await _count(store, "SELECT COUNT(*) FROM fills")
    marked = await store.kv.get_raw(EXCHANGE_MARK)
    if not fills and not isinstance(marked, dict):
        return  # the store never saw the exchange save anything: nothing to lose
    raise StartRefused(
        f"{state_path} is missing, but the store {store.path} beside it holds this account's history "
        f"({fills} fill(s)); starting without it would reset the simulated account to flat and full cash "
        f"with its clock back at the start. Put the file back if you have it. {_fresh_hint(store.directory)}"
    )


def set_state_file_aside(state_path: Path, now: dt.datetime) -> Path | None:
    """``--new-exchange``: keep an existing state file as ``exchange.json.old-<UTC stamp>``."""
    if not state_path.exists():
        return None
    target = state_path.with_name(f"{state_path.name}.old-{now.astimezone(dt.timezone.utc):%Y%m%dT%H%M%S}")
    state_path.replace(target)
    log.warning("engine.exchange_state_set_aside", path=str(state_path), kept_as=str(target))
    return target


async def check_exchange_clock(store: Any, exchange: Any, state_path: Path) -> None:
    """Refuse an exchange whose clock is behind what the store saw of the same exchange run."""
    now = exchange.clock.now()
    prefix = str(exchange.book.exec_prefix)
    behind: list[str] = []
    marked = await store.kv.get_raw(EXCHANGE_MARK)
    if isinstance(marked, dict) and marked.get("exec_prefix") == prefix:
        seen = dt.datetime.fromisoformat(str(marked.get("clock")))
        if now < seen:
            behind.append(f"the store last saw it at {seen.isoformat()}")
    async with store.conn.execute(
        "SELECT MAX(fill_time) FROM fills WHERE exec_id LIKE ? ESCAPE '\\'",
        (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%",),
    ) as cur:
        row = await cur.fetchone()
    if row and row[0]:
        last_fill = dt.datetime.fromisoformat(str(row[0]))
        if now < last_fill:
            behind.append(f"the store holds a fill it reported at {last_fill.isoformat()}")
    if behind:
        raise StartRefused(
            f"the exchange clock in {state_path} ({now.isoformat()}) would go backwards: "
            f"{' and '.join(behind)} (store {store.path}). Is it an older copy of exchange.json? Put the newest "
            f"one back. {_fresh_hint(store.directory)}"
        )


async def mark_exchange(store: Any, exchange: Any, at: dt.datetime) -> None:
    """Record exchange time ``at`` (read before a save of its state file), for the next start's check."""
    await store.kv.set_raw(EXCHANGE_MARK, {"clock": at.isoformat(),
                                           "exec_prefix": str(exchange.book.exec_prefix)})
