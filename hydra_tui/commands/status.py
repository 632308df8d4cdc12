"""``hydra-tui status``: is the engine on this store up, and is it trading as it should?

The answer is an exit code a service manager or cron can act on, plus the reasons:

  down (exit 2)      no store at the data dir; or no engine holds the store (never started,
                     stopped, or died); or the last status snapshot says the engine stopped; or
                     the snapshot is older than 15 s (the engine rewrites it every 3 s, so it is
                     hung or still starting).
  degraded (exit 1)  an engine runs, but at least one of: the broker is not connected; the trading
                     state is not ACTIVE (REDUCING or HALTED); a breaker is TRIGGERED or in
                     COOLDOWN; re-entry after a drawdown at part of the size caps; trading is
                     paused; a conflicting fill is open (that market trades nothing until it is
                     cleared); a market's latest cycle FAILED or was INTERRUPTED; a market is
                     de-risked (its champion plainly broken, size cut until a candidate passes);
                     the risk state could not be persisted; the agent's status could not be read.
  healthy (exit 0)   an engine runs and none of the above holds."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from hydra_tui.commands import common
from hydra_tui.commands.store_reader import StoreTarget, agent_part, open_readonly, snapshot, target_from_args

HEALTHY, DEGRADED, DOWN = "healthy", "degraded", "down"
EXIT_CODES = {HEALTHY: 0, DEGRADED: 1, DOWN: 2}
RULES = __doc__.split("\n\n", 1)[1] if __doc__ else ""
"""The rules above, for ``status --help`` and the README."""


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict with every reason that led to it."""

    level: str
    reasons: tuple[str, ...] = ()
    pid: int | None = None
    snapshot_age_s: float | None = None
    engine: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.level]


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """What the store says beside the snapshot: open fill conflicts and each market's latest cycle."""

    open_conflicts: tuple[str, ...] = ()
    latest_cycles: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """market -> (trading date ISO, status) of its most recent cycle."""


def judge(snap: Any, pid: int | None, facts: StoreFacts, *, now: dt.datetime | None = None,
          stale_after_s: float | None = None) -> Health:
    """Healthy, degraded or down from the snapshot, the lock holder and the store (rules above)."""
    from hydra_engine.operator_requests import STALE_AFTER_S

    stale_after_s = STALE_AFTER_S if stale_after_s is None else stale_after_s
    if snap is None:
        why = "no engine has written a status to this store yet"
        return Health(DOWN, (why + (f"; process {pid} holds it (starting up?)" if pid else ""),), pid)
    age = snap.age_s(now)
    data = snap.data
    engine = data.get("engine") or {}
    if pid is None:
        said = "stopped" if data.get("stopped") else f"was last heard from {age:.0f} s ago and is gone"
        return Health(DOWN, (f"no engine runs on this store (the last one, pid {snap.pid}, {said})",), None, age, engine)
    if snap.pid != pid:
        return Health(DOWN, (f"process {pid} holds the store but has not written its status yet (starting up?)",),
                      pid, age, engine)
    if data.get("stopped"):
        return Health(DOWN, (f"the engine (pid {pid}) is stopping",), pid, age, engine)
    if age > stale_after_s:
        return Health(DOWN, (f"the status is {age:.0f} s old (over {stale_after_s:g} s): the engine (pid {pid}) "
                             "is hung or busy starting",), pid, age, engine)
    reasons = degraded_reasons(data, facts)
    return Health(DEGRADED if reasons else HEALTHY, tuple(reasons), pid, age, engine)


def degraded_reasons(data: Mapping[str, Any], facts: StoreFacts) -> list[str]:
    engine = data.get("engine") or {}
    risk = data.get("risk") or {}
    out: list[str] = []
    if not engine.get("connected", False):
        out.append(f"broker not connected ({engine.get('connection', 'unknown')})")
    state = risk.get("trading_state") or engine.get("trading_state")
    if state and state != "ACTIVE":
        out.append(f"trading state {state}")
    for b in risk.get("breakers") or []:
        if isinstance(b, Mapping) and b.get("state", "ACTIVE") != "ACTIVE":
            extra = f", {b['cooldown_remaining']} trading day(s) of cooldown left" if b.get("cooldown_remaining") else ""
            out.append(f"breaker {b.get('name')} {b.get('state')}{extra}" + (f": {b['reason']}" if b.get("reason") else ""))
    fraction = engine.get("size_fraction")
    if isinstance(fraction, (int, float)) and fraction < 1:
        out.append(f"re-entry after a drawdown at {fraction:g} of every size cap")
    if engine.get("paused"):
        reason = data.get("pause_reason")
        out.append("paused" + (f" ({reason})" if reason else "") + ": no new orders or experiments")
    if facts.open_conflicts:
        out.append(f"conflicting fill open in {', '.join(facts.open_conflicts)}: no orders there until it is cleared")
    for market, (day, status) in sorted(facts.latest_cycles.items()):
        if status in ("FAILED", "INTERRUPTED"):
            out.append(f"latest cycle of {market} ({day}) {status}")
    for market, fraction in sorted((engine.get("derisked") or {}).items()):
        out.append(f"{market} de-risked to {fraction:g} of its size: its champion is plainly broken and no candidate "
                   "has passed yet")
    if risk.get("persist_error"):
        out.append(f"risk state not persisted: {risk['persist_error']}")
    for market, part in agent_part(data).items():
        if "error" in part:
            out.append(f"agent status{(' of ' + market) if market else ''} unreadable: {part['error']}")
    return out


async def store_facts(conn: Any) -> StoreFacts:
    conflicts: list[str] = []
    try:
        async with conn.execute("SELECT DISTINCT symbol FROM fill_conflicts WHERE cleared_at IS NULL ORDER BY symbol") as cur:
            conflicts = [str(r[0]) for r in await cur.fetchall()]
    except Exception:  # noqa: BLE001 - a store from before v009 has no conflicts table
        conflicts = []
    latest: dict[str, tuple[str, str]] = {}
    async with conn.execute("SELECT market, trading_date, status FROM cycles c WHERE trading_date = "
                            "(SELECT MAX(trading_date) FROM cycles WHERE market = c.market)") as cur:
        for market, day, status in await cur.fetchall():
            latest[str(market)] = (str(day), str(status))
    return StoreFacts(tuple(conflicts), latest)


async def assess(target: StoreTarget) -> Health:
    """The health of the engine on ``target`` (down when there is no store)."""
    from hydra_tui.commands.store_reader import no_store_message

    if not target.exists:
        return Health(DOWN, (no_store_message(target),))
    pid = target.engine_pid()
    store = await open_readonly(target)
    try:
        snap = await snapshot(store.conn)
        facts = await store_facts(store.conn)
    finally:
        await store.close()
    return judge(snap, pid, facts)


async def main(args: argparse.Namespace) -> int:
    common.quiet_logging()
    _, target = target_from_args(args)
    health = await assess(target)
    if getattr(args, "json", False):
        common.json_out({"status": health.level, "exit_code": health.exit_code, "reasons": list(health.reasons),
                         "store": str(target.directory), "pid": health.pid, "snapshot_age_s": health.snapshot_age_s,
                         "engine": dict(health.engine)})
    else:
        from hydra_tui.commands.report_tables import status_panel

        common.console().print(status_panel(health, target))
    if health.reasons and health.level != HEALTHY:  # for cron and systemd: the why, one line on stderr
        extra = f" (+{len(health.reasons) - 1} more)" if len(health.reasons) > 1 else ""
        sys.stderr.write(f"hydra-tui status: {health.level}: {health.reasons[0]}{extra}\n")
    return health.exit_code
