"""Operator commands that change state: pause, resume, approve, rollback, reset-peak, flatten.

While an engine runs on the store (it holds the store's lock), the command goes through the
operator-request inbox (``hydra_engine.operator_requests``): it writes a request, the engine
executes it within about a second through its own operator methods, journals it with the actor
(``cli:<login>``) and writes the outcome back, which the command prints (exit 0 done, 1 refused
by the engine or no answer in time). With no engine running, the command acts on the store itself
where that is safe, journalled with the same actor: pause and resume (the persisted flags the next
engine loads), reset-peak (to ``--to`` or the last closing mark), approve and rollback (through the
agent's own controls on the registry). Flatten needs a running engine connected to the broker and
is refused otherwise (exit 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from typing import Any

from hydra_tui.commands import common
from hydra_tui.commands.store_reader import (
    UNASSIGNED,
    StoreTarget,
    check_market,
    known_markets,
    no_store_message,
    open_readonly,
    target_from_args,
)

DEFAULT_TIMEOUT_S = 30.0


async def main(args: argparse.Namespace, command: str) -> int:
    common.quiet_logging()
    settings, target = target_from_args(args)
    if not target.exists:
        raise common.CommandError(no_store_message(target))
    payload = await _payload(args, command, settings, target)
    given = getattr(args, "timeout", None)
    timeout = DEFAULT_TIMEOUT_S if given is None else float(given)
    if timeout <= 0 or not math.isfinite(timeout):
        raise common.CommandError(f"--timeout {timeout:g}: must be a positive number of seconds")
    if command == "flatten":
        _confirm_flatten(args, target)
    who = common.actor()
    pid = target.engine_pid()
    if pid is None:
        if command == "flatten":
            raise common.CommandError(f"flatten needs a running engine connected to the broker, and none runs on "
                                      f"{target.directory}: start it (hydra-tui, or hydra-tui --no-ui) and run flatten again")
        from hydra_engine.store.database import StoreLockedError

        try:
            text = await act_directly(command, payload, settings, target, who)
        except StoreLockedError as exc:  # an engine started meanwhile: hand it the request instead
            pid = exc.pid
        else:
            common.console().print(f"{text}\n(no engine runs on {target.directory}: applied to the store, "
                                   f"journalled as {who})")
            return common.EXIT_OK
    return await through_inbox(command, payload, target, who, pid, timeout)


async def _payload(args: argparse.Namespace, command: str, settings: Any, target: StoreTarget) -> dict[str, Any]:
    out: dict[str, Any] = {}
    market = getattr(args, "market", None)
    if market is not None:
        store = await open_readonly(target)
        try:
            out["market"] = check_market(market, await known_markets(store.conn, settings))
        finally:
            await store.close()
    reason = getattr(args, "reason", None)
    if reason is not None:
        if not reason.strip():
            raise common.CommandError("--reason: must not be empty")
        out["reason"] = reason.strip()
    elif command == "rollback":
        out["reason"] = "operator rollback (hydra-tui rollback)"
    elif command == "pause":
        out["reason"] = "operator (hydra-tui pause)"
    elif command == "reset-peak":
        out["reason"] = "operator reset (hydra-tui reset-peak)"
    to = getattr(args, "to", None)
    if to is not None:
        if not math.isfinite(to) or to <= 0:
            raise common.CommandError(f"--to {to:g}: must be a positive amount in account currency")
        out["to"] = float(to)
    return out


def _confirm_flatten(args: argparse.Namespace, target: StoreTarget) -> None:
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise common.CommandError("flatten asks for confirmation and stdin is not a terminal: add --yes to flatten "
                                  "without asking")
    from rich.prompt import Confirm

    if not Confirm.ask(f"Flatten {target.directory.name}: cancel every working order and close every position "
                       "through the risk gate?", default=False, console=common.console()):
        raise common.CommandError("flatten cancelled: nothing was sent")


# ---------------------------------------------------------------------------------------------- inbox


async def through_inbox(command: str, payload: dict[str, Any], target: StoreTarget, who: str, pid: int | None,
                        timeout: float) -> int:
    """Hand the request to the running engine and report its outcome."""
    from hydra_engine.operator_requests import submit, wait_outcome, withdraw

    db = target.db_path
    rid = await submit(db, command, payload, actor=who)
    req = await wait_outcome(db, rid, timeout_s=timeout)
    if req is None:
        if await withdraw(db, rid):
            sys.stderr.write(f"hydra-tui {command}: the engine (pid {pid}) did not take request {rid} within {timeout:g} s; "
                             "it was withdrawn and nothing changed (is the engine hung? see hydra-tui status)\n")
            return common.EXIT_FAILED
        req = await wait_outcome(db, rid, timeout_s=timeout)  # taken: give it the time to finish
        if req is None:
            sys.stderr.write(f"hydra-tui {command}: the engine took request {rid} but has not finished it after "
                             f"{2 * timeout:g} s; its outcome will be in hydra-tui journal\n")
            return common.EXIT_FAILED
    if req.status == "DONE":
        common.console().print(f"{req.outcome}\n(engine pid {pid}, request {rid}, journalled as {who})")
        return common.EXIT_OK
    sys.stderr.write(f"hydra-tui {command}: the engine refused: {req.outcome}\n")
    return common.EXIT_FAILED


# ---------------------------------------------------------------------------------------------- no engine


async def act_directly(command: str, payload: dict[str, Any], settings: Any, target: StoreTarget, who: str) -> str:
    """Apply a command to the store of a stopped engine (the store's lock held meanwhile)."""
    from hydra_engine.store.database import Store, StoreError

    try:
        store = await Store.open(target.data_dir, target.kind, target.account, lock=True,
                                 backups_kept=settings.store.backups_kept)
    except StoreError as exc:
        from hydra_engine.store.database import StoreLockedError

        if isinstance(exc, StoreLockedError):
            raise
        raise common.CommandError(str(exc)) from None
    try:
        if command in ("pause", "resume"):
            return await _set_pause(store, command == "pause", payload.get("reason", ""), who)
        if command == "reset-peak":
            return await _reset_peak(store, payload, who)
        if command in ("approve", "rollback"):
            return await _agent_control(store, settings, command, payload, who)
        raise common.CommandError(f"{command}: not possible without a running engine")
    finally:
        await store.close()


async def _set_pause(store: Any, paused: bool, reason: str, who: str) -> str:
    """The persisted pause of the runner and of every market's agent, as the engine's own pause sets them."""
    from hydra_engine.agent.journal import ExperimentJournal
    from hydra_engine.store.kv import PAUSE_REASON, PAUSED

    await store.kv.set(PAUSED, paused)
    await store.kv.set(PAUSE_REASON, reason if paused else "")
    async with store.tx.transaction() as conn:
        cur = await conn.execute(
            "UPDATE agent_state SET value = json_set(value, '$.paused', json(?)), updated_at = ? "
            "WHERE key = 'agent' OR key LIKE 'agent:%' RETURNING key", ("true" if paused else "false", _now_iso()))
        keys = [str(r[0]) for r in await cur.fetchall()]
        await cur.close()
    for key in keys:
        market = key.partition(":")[2] or None
        await ExperimentJournal(store.conn, store.tx, market=market).record(
            "control", "agent paused: experiments stop, observation continues" if paused else "agent resumed",
            outcome="paused" if paused else "resumed", payload={"actor": who})
    word = "pause" if paused else "resume"
    await store.ops.command(word, f"paused: {reason}" if paused else "resumed", actor=who,
                            detail={"engine": "not running", "agents": keys})
    return (f"paused ({reason}): the next engine on this store starts paused (no new orders or experiments; "
            "observation continues)" if paused else "resumed: the next engine on this store trades and experiments")


async def _reset_peak(store: Any, payload: dict[str, Any], who: str) -> str:
    value = payload.get("to")
    basis = "--to"
    if value is None:
        mark = await store.equity.latest_mark()
        if mark is None:
            raise common.CommandError("reset-peak: no engine runs and the store has no closing mark yet: give the new "
                                      "peak with --to X")
        value, basis = mark.net_liquidation, f"the last closing mark ({mark.trading_date})"
    rec = await store.equity.reset_peak(float(value), str(payload.get("reason") or "operator reset"), actor=who)
    return f"equity peak reset to {rec.peak:,.2f} ({basis})"


async def _agent_control(store: Any, settings: Any, command: str, payload: dict[str, Any], who: str) -> str:
    """Approve or roll back through the agent's own controls, on the persisted state of that market's agent."""
    from hydra_engine.agent.controls import AgentControls
    from hydra_engine.agent.core import AgentMemory, PhaseTracker
    from hydra_engine.agent.journal import ExperimentJournal
    from hydra_engine.agent.state import AgentStateStore
    from hydra_engine.engine_setup import agent_config
    from hydra_engine.model.registry import ModelRegistry, RegistryError

    scope, row_key = await _scope(store, command, payload.get("market"), settings)
    base = ModelRegistry(store.conn, store.directory / "models", store.clock, write_gate=store.tx)
    registry = base.for_market(scope) if scope else base
    raw = {k: v for k, v in dict(settings.sections.get("agent", {})).items() if k != "enabled"}
    memory = AgentMemory(AgentStateStore(store.conn, store.tx, key=row_key), agent_config(raw))
    await memory.load()
    controls = AgentControls(registry, ExperimentJournal(store.conn, store.tx, market=scope or None), memory, PhaseTracker())
    shown = scope or "the store's single champion"
    try:
        if command == "approve":
            version = await controls.approve()
            await store.ops.command("approve", f"approved candidate {version} ({shown})", actor=who,
                                    detail={"engine": "not running", "market": scope})
            return f"approved: {version} is the champion of {shown}; it trades from the next signal"
        previous = await registry.champion_version()
        day = await _latest_trading_date(store)
        restored = await controls.rollback(str(payload["reason"]), day)
        await store.ops.command("rollback", f"rolled back {previous} -> {restored} ({shown}): {payload['reason']}",
                                actor=who, detail={"engine": "not running", "market": scope, "reason": payload["reason"]})
        return f"rolled back {previous} -> {restored} ({shown})"
    except RegistryError as exc:
        raise common.CommandError(str(exc)) from None


async def _scope(store: Any, command: str, market: str | None, settings: Any) -> tuple[str, str]:
    """(registry market, agent_state row) the command is about: the named market's, or the only one
    with something to act on; an older store's single champion (market '') serves every market."""
    from hydra_engine.agent.state import state_key
    from hydra_tui.commands.store_reader import agent_states, champions

    states = await agent_states(store.conn)
    champs = await champions(store.conn)
    if command == "approve":
        pending = sorted(m for m, s in states.items() if s.get("pending"))
        if market is not None:
            key = market if market in states else (UNASSIGNED if UNASSIGNED in states else market)
            if not (states.get(key) or {}).get("pending"):
                raise common.CommandError(f"approve: no candidate is awaiting approval for {market} "
                                          f"(awaiting: {', '.join(m or 'the single agent' for m in pending) or 'none'})")
        elif len(pending) == 1:
            key = pending[0]
        elif not pending:
            raise common.CommandError("approve: no candidate is awaiting approval")
        else:
            raise common.CommandError(f"approve: candidates await approval in {', '.join(pending)}: name one with --market")
        version = states[key]["pending"]["version"]
        async with store.conn.execute("SELECT market FROM models WHERE version = ?", (version,)) as cur:
            row = await cur.fetchone()
        return (str(row[0] or "") if row else key), state_key(key)
    if market is not None:
        if market in champs:
            return market, state_key(market)
        if UNASSIGNED in champs:
            return UNASSIGNED, state_key(UNASSIGNED)
        raise common.CommandError(f"rollback: {market} has no champion (champions: {', '.join(champs) or 'none'})")
    if len(champs) == 1:
        only = next(iter(champs))
        return only, state_key(only if only in states else UNASSIGNED)
    if not champs:
        raise common.CommandError("rollback: there is no champion to roll back")
    raise common.CommandError(f"rollback: each market has its own champion ({', '.join(champs)}): name one with --market")


async def _latest_trading_date(store: Any) -> dt.date:
    """The store's latest cycle date (simulated in lock-step), for the rollback cooldown; today without one."""
    async with store.conn.execute("SELECT MAX(trading_date) FROM cycles") as cur:
        row = await cur.fetchone()
    return dt.date.fromisoformat(row[0]) if row and row[0] else dt.datetime.now(dt.timezone.utc).date()


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
