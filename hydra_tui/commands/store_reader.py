"""Which store a command means, whether an engine runs on it, and what the store says.

A store is ``<data dir>/<broker>-<account>/hydra.db``. A command names it through the settings
(``--broker``, ``--set broker.account=...``) or, when nothing is named, finds the only one there.
An engine runs on a store while it holds the store's lock (``hydra.lock``, an OS lock that dies
with the process); its status snapshot (``engine_status``) is what ``status`` and ``diagnose``
show of it. Reads go through a read-only connection, so every reader works beside a running engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from hydra_tui.commands.common import CommandError

if TYPE_CHECKING:
    import aiosqlite

    from hydra_engine.operator_requests import StatusSnapshot
    from hydra_engine.store.database import Store

SIM_DEFAULT_ACCOUNT = "DU1234567"
"""The embedded exchange's account when none is configured (``hydra_engine.engine.SIM_DEFAULT_ACCOUNT``;
repeated here so a command need not import the whole engine, and checked equal by a test)."""
UNASSIGNED = ""
"""Market of rows written before per-market champions (the store's single champion and agent)."""


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """The store a command acts on (it may not exist yet)."""

    data_dir: Path
    kind: str
    account: str

    @property
    def directory(self) -> Path:
        from hydra_engine.paths import store_dir

        return store_dir(self.data_dir, self.kind, self.account)

    @property
    def db_path(self) -> Path:
        from hydra_engine.paths import DB_FILE_NAME

        return self.directory / DB_FILE_NAME

    @property
    def lock_path(self) -> Path:
        from hydra_engine.paths import LOCK_FILE_NAME

        return self.directory / LOCK_FILE_NAME

    @property
    def exists(self) -> bool:
        return self.db_path.is_file()

    def engine_pid(self) -> int | None:
        """PID of the engine holding this store's lock, None when no engine runs on it."""
        from hydra_engine.store.lock import StoreLock

        return StoreLock.holder_pid(self.lock_path) if self.lock_path.exists() else None


def stores_in(data_dir: Path) -> list[StoreTarget]:
    """Every store under ``data_dir`` (directories ``<broker>-<account>`` holding a ``hydra.db``)."""
    from hydra_engine.paths import DB_FILE_NAME

    if not data_dir.is_dir():
        return []
    found = []
    for d in sorted(data_dir.iterdir()):
        kind, sep, account = d.name.partition("-")
        if sep and kind in ("sim", "ib") and account and (d / DB_FILE_NAME).is_file():
            found.append(StoreTarget(data_dir, kind, account))
    return found


def resolve_target(settings: Any, data_dir: Path, *, broker_named: bool) -> StoreTarget:
    """The store named by the settings; with nothing named, the only store in ``data_dir``.

    ``broker_named``: the user chose the broker (``--broker``), so only that broker's stores count.
    """
    kind = settings.broker.kind
    if settings.broker.account:
        return StoreTarget(data_dir, kind, settings.broker.account)
    stores = stores_in(data_dir)
    if kind == "sim":
        default = StoreTarget(data_dir, "sim", SIM_DEFAULT_ACCOUNT)
        if default.exists or broker_named:
            return default
        if len(stores) == 1:  # e.g. only a paper account's store: that is the one meant
            return stores[0]
        if len(stores) > 1:
            raise CommandError(f"{data_dir} holds several stores ({', '.join(s.directory.name for s in stores)}) and "
                               "none is the embedded exchange's default: name one with --broker and "
                               "--set broker.account=...")
        return default
    mine = [s for s in stores if s.kind == kind]
    if len(mine) == 1:
        return mine[0]
    if not mine:
        raise CommandError(f"no {kind} store in {data_dir}: start the engine once with --broker {kind} to create it")
    raise CommandError(f"{data_dir} holds several {kind} stores ({', '.join(s.account for s in mine)}): "
                       f"name the account with --set broker.account={mine[0].account}")


def target_from_args(args: Any) -> tuple[Any, StoreTarget]:
    """(settings, store target) for a command's ``--config --data-dir --broker --set`` options."""
    from hydra_tui.commands.common import settings_for

    settings = settings_for(args)
    data_dir = settings.data_dir(getattr(args, "data_dir", None))
    if data_dir.exists() and not data_dir.is_dir():
        raise CommandError(f"--data-dir {data_dir}: not a directory")
    return settings, resolve_target(settings, data_dir, broker_named=bool(getattr(args, "broker", None)))


def no_store_message(target: StoreTarget) -> str:
    return (f"no store at {target.db_path}: start the engine once to create it (hydra-tui, hydra-tui --no-ui, or "
            f"hydra-tui replay --data-dir {target.data_dir})")


async def open_readonly(target: StoreTarget) -> Store:
    """A read-only view of the store (no lock, never migrates); refusals as ``CommandError``."""
    from hydra_engine.store.database import Store, StoreError

    if not target.exists:
        raise CommandError(no_store_message(target))
    try:
        return await Store.open(target.data_dir, target.kind, target.account, readonly=True, lock=False)
    except StoreError as exc:
        raise CommandError(str(exc)) from None


async def snapshot(conn: aiosqlite.Connection) -> StatusSnapshot | None:
    from hydra_engine.operator_requests import read_snapshot

    return await read_snapshot(conn)


async def agent_states(conn: aiosqlite.Connection) -> dict[str, dict[str, Any]]:
    """Each agent's persisted state by market (``UNASSIGNED`` for the single agent of an older store)."""
    try:
        async with conn.execute("SELECT key, value FROM agent_state WHERE key = 'agent' OR key LIKE 'agent:%' "
                                "ORDER BY key") as cur:
            rows = await cur.fetchall()
    except Exception:  # noqa: BLE001 - a store from before the agent's tables
        return {}
    out: dict[str, dict[str, Any]] = {}
    for key, value in rows:
        market = str(key).partition(":")[2]
        try:
            out[market] = json.loads(value)
        except json.JSONDecodeError:
            out[market] = {"error": f"agent_state row {key!r} is not valid JSON"}
    return out


async def champions(conn: aiosqlite.Connection) -> dict[str, dict[str, Any]]:
    """The champion of each market: version, family, when promoted (``UNASSIGNED`` for an older store)."""
    try:
        async with conn.execute("SELECT market, version, family, promoted_at, n_train, mutation FROM models "
                                "WHERE status = 'champion' ORDER BY market") as cur:
            rows = await cur.fetchall()
    except Exception:  # noqa: BLE001 - before per-market champions: no market column
        async with conn.execute("SELECT '', version, family, promoted_at, n_train, mutation FROM models "
                                "WHERE status = 'champion'") as cur:
            rows = await cur.fetchall()
    out: dict[str, dict[str, Any]] = {}
    for market, version, family, promoted, n_train, mutation in rows:
        out[str(market or "")] = {"version": version, "family": family, "promoted_at": promoted, "n_train": n_train,
                                  "mutation": mutation}
    return out


async def known_markets(conn: aiosqlite.Connection, settings: Any) -> list[str]:
    """Markets this store knows: the configured ones, then any with cycles, models or journal rows."""
    names = [m.symbol for m in settings.markets]
    for sql in ("SELECT DISTINCT market FROM cycles", "SELECT DISTINCT market FROM models",
                "SELECT DISTINCT market FROM agent_journal"):
        try:
            async with conn.execute(sql) as cur:
                for (m,) in await cur.fetchall():
                    if m and m not in names:
                        names.append(str(m))
        except Exception:  # noqa: BLE001 - a table or column an older store lacks
            continue
    return names


def check_market(market: str | None, known: list[str]) -> str | None:
    """``market`` upper-cased if this store knows it; an unknown one is refused naming the known ones."""
    if market is None:
        return None
    m = market.strip().upper()
    if m not in known:
        raise CommandError(f"--market {market!r}: unknown market; this store knows {', '.join(known) or 'none'}")
    return m


def first_market(settings: Any) -> str:
    return str(settings.markets[0].symbol)


def by_market(rows: Mapping[str, Any], settings: Any) -> dict[str, Any]:
    """Rows keyed by market, with an older store's unassigned rows shown under its first market
    (where the engine moves them at its next start)."""
    out = {k: v for k, v in rows.items() if k != UNASSIGNED}
    if UNASSIGNED in rows and first_market(settings) not in out:
        out[first_market(settings)] = rows[UNASSIGNED]
    return out


def agent_part(snapshot_data: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The snapshot's agent status by market: ``{"markets": {M: status}}`` (per-market agents) or one
    status dict (the single agent of an older engine, returned under ``UNASSIGNED``)."""
    agent = (snapshot_data or {}).get("agent")
    if not isinstance(agent, Mapping):
        return {}
    markets = agent.get("markets")
    if isinstance(markets, Mapping):
        return {str(k): v for k, v in markets.items() if isinstance(v, Mapping)}
    return {UNASSIGNED: agent}
