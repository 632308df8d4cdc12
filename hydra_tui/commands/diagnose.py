"""``hydra-tui diagnose``: per market, what the agent watches and what it last concluded.

For each market's agent: its champion, autonomy, pause, pending approval, de-risk in force and
rollback watch; every detector's statistic against its threshold (from the state the agent
persists after each observation, so it reads the same with or without a running engine); and the
last diagnosis with its evidence (the findings, drifted and regime features, performance alarms).
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping

from hydra_tui.commands import common
from hydra_tui.commands.store_reader import (
    UNASSIGNED,
    agent_part,
    agent_states,
    by_market,
    champions,
    check_market,
    first_market,
    known_markets,
    open_readonly,
    snapshot,
    target_from_args,
)


def readings_of(state: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Every detector's statistic and threshold from a persisted agent state (and why not, if unreadable)."""
    from hydra_engine.agent.drift import DriftMonitor, PerformanceMonitor

    out: list[dict[str, Any]] = []
    try:
        if state.get("drift"):
            out += [_reading(r) for r in DriftMonitor.from_dict(state["drift"]).readings()]
        if state.get("performance"):
            out += [_reading(r) for r in PerformanceMonitor.from_dict(state["performance"]).readings()]
    except (KeyError, TypeError, ValueError) as exc:
        return out, f"detector state unreadable: {type(exc).__name__}: {exc}"
    return out, None


def _reading(r: Any) -> dict[str, Any]:
    """A p-value detector (``*_p``, e.g. the KS test's) alarms below its threshold, the others at or above it."""
    lower = str(r.detector).endswith("_p")
    alarm = r.statistic < r.threshold if lower else bool(r.threshold) and r.statistic >= r.threshold
    return {"stream": r.stream, "detector": r.detector, "statistic": r.statistic, "threshold": r.threshold,
            "alarm_below": lower, "alarm": bool(alarm)}


async def last_diagnoses(conn: Any) -> dict[str, dict[str, Any]]:
    """The newest diagnosis entry of each market (``UNASSIGNED`` for an older store's single agent)."""
    import json

    sql = ("SELECT j.market, j.trading_date, j.outcome, j.summary, j.payload FROM agent_journal j WHERE j.id IN "
           "(SELECT MAX(id) FROM agent_journal WHERE entry_type = 'diagnosis' GROUP BY market)")
    out: dict[str, dict[str, Any]] = {}
    async with conn.execute(sql) as cur:
        for market, day, kind, summary, payload in await cur.fetchall():
            try:
                body = json.loads(payload or "{}")
            except json.JSONDecodeError:
                body = {}
            out[str(market or "")] = {"trading_date": day, "kind": kind, "summary": summary,
                                      "features": body.get("features", []), "evidence": body.get("evidence", {})}
    return out


async def gather(conn: Any, settings: Any, market: str | None) -> dict[str, dict[str, Any]]:
    """Per market: champion, agent state summary, detector readings, last diagnosis, live phase."""
    raw_states = await agent_states(conn)
    states = by_market(raw_states, settings)
    champs = by_market(await champions(conn), settings)
    diags = by_market(await last_diagnoses(conn), settings)
    snap = await snapshot(conn)
    live = by_market(agent_part(snap.data if snap is not None and not snap.data.get("stopped") else None), settings)
    names = [m for m in dict.fromkeys([*(s.symbol for s in settings.markets), *states, *champs, *diags])
             if market is None or m == market]
    out: dict[str, dict[str, Any]] = {}
    for m in names:
        state = states.get(m) or {}
        readings, problem = readings_of(state) if state else ([], None)
        shared = m == first_market(settings) and UNASSIGNED in raw_states
        out[m] = {
            "champion": champs.get(m),
            "phase": (live.get(m) or {}).get("phase"),
            "autonomy": state.get("autonomy"),
            "paused": state.get("paused"),
            "pending": state.get("pending"),
            "derisk": state.get("derisk"),
            "rollback_watch": state.get("rollback"),
            "last_cycle": state.get("last_cycle"),
            "recent_findings": state.get("recent_findings", [])[-10:],
            "detectors": readings,
            "detector_problem": problem,
            "last_diagnosis": diags.get(m),
            "note": ("the store's single agent (before per-market champions): it observes this market only"
                     if shared else ("no agent has observed this market yet" if not state else None)),
        }
    return out


async def main(args: argparse.Namespace) -> int:
    common.quiet_logging()
    settings, target = target_from_args(args)
    store = await open_readonly(target)
    try:
        market = check_market(getattr(args, "market", None), await known_markets(store.conn, settings))
        per_market = await gather(store.conn, settings, market)
    finally:
        await store.close()
    if getattr(args, "json", False):
        common.json_out({"store": str(target.directory), "markets": per_market})
        return common.EXIT_OK
    render(per_market)
    return common.EXIT_OK


def render(per_market: Mapping[str, Mapping[str, Any]]) -> None:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    from hydra_tui.commands.report_tables import detectors_table, kv_table

    out = common.console()
    for m, d in per_market.items():
        champ = d.get("champion") or {}
        pending = d.get("pending") or {}
        derisk = d.get("derisk") or {}
        rows: list[tuple[str, Any]] = [
            ("champion", f"{champ.get('version', '-')} ({champ.get('family') or '?'}, {champ.get('mutation') or '?'})"
             if champ else "none"),
            ("phase", d.get("phase") or "- (no engine running)"),
            ("autonomy", f"{d.get('autonomy') or '-'}" + ("; PAUSED" if d.get("paused") else "")),
            ("pending approval", f"{pending.get('version')} ({pending.get('hypothesis_key')}, {pending.get('trading_date')})"
             if pending else "none"),
            ("de-risk", f"size x{derisk.get('size_fraction')} since {derisk.get('since')}: {derisk.get('reason', '')}"
             if derisk else "none"),
            ("last cycle", d.get("last_cycle") or "-"),
        ]
        if d.get("note"):
            rows.append(("note", d["note"]))
        parts: list[Any] = [kv_table(rows)]
        if d.get("detectors"):
            parts.append(detectors_table(d["detectors"], "Detectors (statistic against threshold)"))
        elif d.get("detector_problem"):
            parts.append(Text(d["detector_problem"], style="red"))
        diag = d.get("last_diagnosis")
        if diag:
            ev = diag.get("evidence") or {}
            diag_rows: list[tuple[str, Any]] = [
                ("last diagnosis", Text(f"{diag.get('kind')} on {diag.get('trading_date')}: {diag.get('summary')}",
                                        style="bold")),
                ("features", ", ".join(diag.get("features") or []) or "-"),
                ("drifted features", ", ".join(ev.get("drifted_features") or []) or "-"),
                ("regime features", ", ".join(ev.get("regime_features") or []) or "-"),
                ("performance alarms", ", ".join(ev.get("performance_alarms") or []) or "-"),
                ("performance", ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                                          for k, v in (ev.get("performance") or {}).items()) or "-"),
            ]
            for f in (ev.get("findings") or [])[:8]:
                diag_rows.append(("finding", f"{f.get('date')} {f.get('stream')} {f.get('detector')} "
                                             f"{_n(f.get('statistic', f.get('value')))} >= {_n(f.get('threshold'))}"))
            parts.append(kv_table(diag_rows))
        else:
            parts.append(Text("no diagnosis yet", style="dim"))
        out.print(Panel(Group(*parts), title=f"Agent {m}", title_align="left", expand=False))


def _n(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)
