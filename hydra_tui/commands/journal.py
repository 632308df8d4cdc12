"""``hydra-tui journal``: the agent's journal and the operator journal merged, newest first.

Agent entries (observation, diagnosis, hypothesis, experiment, decision, rollback, data_quality,
control, error) carry the trading date they are about and their market; operator entries
(command, position_change, safety, note, alert, retention, fill_conflict) carry the engine's clock
and who asked.
Both are ordered by that date, newest first. ``--type`` picks either kind; ``--outcome`` matches
an agent entry's outcome or an operator entry's command; ``--since`` is a date; ``--market``
keeps the entries about one market.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from hydra_tui.commands import common
from hydra_tui.commands.store_reader import UNASSIGNED, check_market, first_market, known_markets, open_readonly, target_from_args

AGENT_TYPES = ("observation", "diagnosis", "hypothesis", "experiment", "decision", "rollback", "data_quality",
               "control", "error")
"""``hydra_engine.agent.journal.ENTRY_TYPES`` (a test keeps them equal)."""


def operator_types() -> tuple[str, ...]:
    """The operator journal's kinds in lower case (``OpsKind``, plus the conflicting-fill alarm's)."""
    from hydra_engine.store.fill_conflicts import FILL_CONFLICT_KIND
    from hydra_engine.store.ops_journal import OpsKind

    return tuple(dict.fromkeys([*(k.value.lower() for k in OpsKind), FILL_CONFLICT_KIND.lower()]))


@dataclass(frozen=True, slots=True)
class JournalLine:
    """One entry of either journal, as shown and as ``--json`` prints it."""

    when: str
    """Trading date (agent) or the engine clock's time stamp (operator), ISO."""
    source: str
    """"agent" or "operator"."""
    type: str
    outcome: str
    market: str
    actor: str
    summary: str
    id: int
    payload: Any = None


async def read_lines(conn: Any, settings: Any, *, type_: str | None, outcome: str | None, since: str | None,
                     market: str | None, limit: int) -> list[JournalLine]:
    """The newest ``limit`` entries matching every filter given, newest first."""
    lines: list[JournalLine] = []
    if type_ is None or type_ in AGENT_TYPES:
        sql = ("SELECT id, at, trading_date, entry_type, outcome, summary, payload, market FROM agent_journal WHERE 1=1")
        params: list[Any] = []
        if type_:
            sql, params = sql + " AND entry_type = ?", params + [type_]
        if outcome:
            sql, params = sql + " AND outcome = ?", params + [outcome]
        if since:
            sql, params = sql + " AND COALESCE(trading_date, substr(at, 1, 10)) >= ?", params + [since]
        if market:
            markets = [market] + ([UNASSIGNED] if market == first_market(settings) else [])
            sql += f" AND market IN ({', '.join('?' * len(markets))})"
            params += markets
        sql, params = sql + " ORDER BY id DESC LIMIT ?", params + [limit]
        async with conn.execute(sql, params) as cur:
            for rid, at, day, etype, out, summary, payload, mkt in await cur.fetchall():
                shown = mkt or first_market(settings)  # an older store's single agent: its first market
                lines.append(JournalLine(day or str(at)[:10], "agent", etype, out or "", shown, "", summary, rid,
                                         _json(payload)))
    if type_ is None or type_ in operator_types():
        sql = "SELECT id, at, kind, command, actor, message, detail FROM ops_journal WHERE 1=1"
        params = []
        if type_:
            sql, params = sql + " AND lower(kind) = ?", params + [type_]
        if outcome:
            sql, params = sql + " AND command = ?", params + [outcome]
        if since:
            sql, params = sql + " AND at >= ?", params + [since]
        sql, params = sql + " ORDER BY id DESC LIMIT ?", params + [limit if not market else limit * 20]
        async with conn.execute(sql, params) as cur:
            for rid, at, kind, command, who, message, detail in await cur.fetchall():
                d = _json(detail)
                about = _market_of(d)
                if market and about != market:
                    continue
                lines.append(JournalLine(str(at).replace("+00:00", "Z"), "operator", str(kind).lower(), command or "",
                                         about, who or "", message, rid, d))
    lines.sort(key=lambda x: (x.when[:10], x.when, x.source == "agent", x.id), reverse=True)
    return lines[:limit]


def _json(text: Any) -> Any:
    import json

    try:
        return json.loads(text) if text else None
    except (TypeError, ValueError):
        return text


def _market_of(detail: Any) -> str:
    """The market an operator entry is about, when its detail names one."""
    if not isinstance(detail, dict):
        return ""
    args = detail.get("args")
    holders: list[dict[str, Any]] = [detail, args] if isinstance(args, dict) else [detail]
    for holder in holders:
        for key in ("market", "symbol"):
            value = holder.get(key)
            if isinstance(value, str):
                return value
    return ""


async def main(args: argparse.Namespace) -> int:
    common.quiet_logging()
    type_ = args.type.strip().lower() if getattr(args, "type", None) else None
    if type_ is not None and type_ not in AGENT_TYPES + operator_types():
        raise common.CommandError(f"--type {args.type!r}: not a journal entry type; agent: {', '.join(AGENT_TYPES)}; "
                                  f"operator: {', '.join(operator_types())}")
    since = common.parse_date("--since", args.since).isoformat() if getattr(args, "since", None) else None
    limit = common.positive_limit("--limit", getattr(args, "limit", 50)) or 50
    settings, target = target_from_args(args)
    store = await open_readonly(target)
    try:
        market = check_market(getattr(args, "market", None), await known_markets(store.conn, settings))
        lines = await read_lines(store.conn, settings, type_=type_, outcome=getattr(args, "outcome", None) or None,
                                 since=since, market=market, limit=limit)
    finally:
        await store.close()
    if getattr(args, "json", False):
        common.json_out({"store": str(target.directory), "entries": lines})
        return common.EXIT_OK
    from hydra_tui.commands.report_tables import journal_table

    filters = ", ".join(f"{k} {v}" for k, v in (("type", type_), ("outcome", getattr(args, "outcome", None)),
                                                 ("since", since), ("market", market)) if v)
    common.console().print(journal_table(lines, f"Journal of {target.directory}: {len(lines)} entr{'y' if len(lines) == 1 else 'ies'}, "
                                                f"newest first" + (f" ({filters})" if filters else "")))
    return common.EXIT_OK
