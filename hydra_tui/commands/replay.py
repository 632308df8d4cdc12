"""``hydra-tui replay``: N trading days lock-step on the embedded exchange, then a report.

The store is a fresh temporary one unless ``--data-dir`` names a directory, where it is kept (so
``journal``, ``fill-report`` and ``status --data-dir D`` read it afterwards; a second replay there
continues the same simulated account). ``--markets`` restricts the configured markets. A progress
bar (days played of N, elapsed, ETA) goes to stderr, the report to stdout: P&L, fills, the
slippage reconciliation, drift alarms, experiments, promotions and rollbacks, and per market the
alarms beside the scenario's true change dates, experiments by outcome, promotions, rollbacks, and
P&L and hit rate before and after the change (``market_report`` says how they are computed).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from hydra_tui.commands import common
from hydra_tui.commands import market_report as mr

TRACKED = ("cycles", "fills", "orders", "agent_journal", "agent_experiments")
"""Tables whose rows written by this run (rowid above the mark taken before it) the report counts."""


def restrict_markets(settings: Any, markets: str | None) -> Any:
    """The settings with only the markets named in ``--markets A,B`` (configured ones only)."""
    if not markets:
        return settings
    names = [m.strip().upper() for m in markets.split(",") if m.strip()]
    known = [m.symbol for m in settings.markets]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise common.CommandError(f"--markets {markets!r}: {'unknown market ' + ', '.join(unknown) if unknown else 'empty'}; "
                                  f"the configured markets are {', '.join(known)}")
    return dataclasses.replace(settings, markets=tuple(m for m in settings.markets if m.symbol in names))


def replay_autonomy(settings: Any) -> Any:
    """A replay has no operator to approve candidates: unless the settings name an autonomy level,
    its agents run autonomous (``--set agent.initial_autonomy=supervised`` leaves candidates
    awaiting approval, as the TUI's default does). A kept store's persisted level still wins."""
    agent = dict(settings.sections.get("agent", {}))
    if "initial_autonomy" in agent:
        return settings
    return dataclasses.replace(settings, sections={**settings.sections, "agent": {**agent, "initial_autonomy": "autonomous"}})


async def main(args: argparse.Namespace) -> int:
    days = getattr(args, "days", 20)
    if days is None or days < 1:
        raise common.CommandError(f"--days {days}: must be 1 or more")
    settings = replay_autonomy(restrict_markets(common.settings_for(args), getattr(args, "markets", None)))
    if settings.broker.kind != "sim":
        raise common.CommandError("replay runs on the embedded exchange only (broker.kind = 'sim')")
    keep = getattr(args, "data_dir", None) is not None or bool(getattr(args, "keep_store", False))
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if keep:
        from hydra_engine.paths import DataDirError, check_data_dir

        data_dir = settings.data_dir(getattr(args, "data_dir", None))
        try:
            check_data_dir(data_dir)
        except DataDirError as exc:
            raise common.CommandError(str(exc)) from None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="hydra-replay-")
        data_dir = Path(tmp.name)
    sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed below; logs go to the file only
    try:
        return await _replay(args, settings, data_dir, days, keep, sink)
    finally:
        sink.close()
        if tmp is not None:
            tmp.cleanup()


async def _replay(args: argparse.Namespace, settings: Any, data_dir: Path, days: int, keep: bool, sink: TextIO) -> int:
    from hydra_engine.config import ConfigError
    from hydra_engine.engine import Engine
    from hydra_engine.engine_checks import is_refusal
    from hydra_tui.headless import configure_logging, log_file_for

    log_path = log_file_for(settings, data_dir) if keep else data_dir / "replay.log"
    fh = configure_logging("WARNING", log_path, stream=sink)
    try:
        try:
            engine = Engine(settings, data_dir=data_dir, lockstep=True, seed=getattr(args, "seed", None))
        except (ConfigError, ValueError) as exc:
            raise common.CommandError(str(exc)) from None
        progress, task = _progress(days)
        try:
            with progress:
                try:
                    await engine.start()
                    marks = await _row_marks(engine.store.conn)
                    start_nlv = (await engine.broker.get_account_summary()).net_liquidation
                    progress.update(task, description="replay")
                    engine.driver.on_day = lambda day, _summaries: progress.update(task, advance=1, description=f"replay {day}")
                    played = await engine.run_days(days)
                    if played.data_end is not None:
                        sys.stderr.write(f"hydra-tui replay: the exchange's history ends on {played.data_end}: "
                                         f"played {played.days} of {days} day(s)\n")
                    if engine.runner is not None:
                        await engine.runner.wait_executions(0)
                    report = await build_report(engine, settings, days, marks, start_nlv,
                                                kept=engine.store.directory if keep else None)
                except Exception as exc:  # noqa: BLE001 - refusals are bad input (2), the rest a failure (1)
                    if is_refusal(exc):
                        raise common.CommandError(str(exc)) from None
                    sys.stderr.write(f"hydra-tui replay: {type(exc).__name__}: {exc}\n")
                    return common.EXIT_FAILED
        finally:
            await engine.stop()
    finally:
        if fh is not None:
            fh.close()
    if getattr(args, "json", False):
        common.json_out(report)
    else:
        render(report)
    return common.EXIT_OK


def _progress(days: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                        console=common.console(stderr=True), transient=False, redirect_stdout=False,
                        redirect_stderr=False)
    return progress, progress.add_task("starting the engine", total=days)


async def _row_marks(conn: Any) -> dict[str, int]:
    out = {}
    for table in TRACKED:
        async with conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}") as cur:
            row = await cur.fetchone()
        out[table] = int(row[0]) if row else 0
    return out


# ---------------------------------------------------------------------------------------------- the report


async def build_report(engine: Any, settings: Any, days: int, marks: dict[str, int], start_nlv: float,
                       kept: Path | None) -> dict[str, Any]:
    """Everything the report shows, as plain values (``--json`` prints this)."""
    conn = engine.store.conn
    first = settings.markets[0].symbol

    async def rows(sql: str, *params: Any) -> list[Any]:
        async with conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    cycles = await rows("SELECT market, trading_date, status, summary FROM cycles WHERE rowid > ? ORDER BY trading_date",
                        marks["cycles"])
    orders = await rows("SELECT status, COUNT(*) FROM orders WHERE rowid > ? GROUP BY status", marks["orders"])
    fills_run = await rows("SELECT COUNT(*), COALESCE(SUM(qty), 0), COALESCE(SUM(commission), 0) FROM fills WHERE rowid > ?",
                           marks["fills"])
    jm, em = marks["agent_journal"], marks["agent_experiments"]
    journal = await rows("SELECT market, entry_type, outcome, trading_date FROM agent_journal WHERE rowid > ?", jm)
    experiments = await rows("SELECT market, outcome, status FROM agent_experiments WHERE rowid > ?", em)
    equity = await rows("SELECT trading_date, net_liquidation FROM equity_marks ORDER BY trading_date")
    dates = sorted({str(c[1]) for c in cycles})
    window = (dt.date.fromisoformat(dates[0]), dt.date.fromisoformat(dates[-1])) if dates else (None, None)
    peak, max_dd = -math.inf, 0.0
    for day, nlv in equity:
        if window[0] is not None and dt.date.fromisoformat(day) < window[0]:
            continue
        peak = max(peak, nlv)
        if peak > 0:
            max_dd = max(max_dd, (peak - nlv) / peak)
    account = await engine.broker.get_account_summary()
    positions = {p.local_symbol: p.quantity for p in await engine.broker.get_positions() if p.quantity}

    def market_of(m: str) -> str:
        return m or first  # an older store's single agent: it observed the first market

    alarms = [(market_of(m), day) for m, t, o, day in journal if t == "observation" and o == "alarm" and day]
    by_outcome: dict[str, int] = {}
    for _m, outcome, status in experiments:
        key = outcome or status.lower()
        by_outcome[key] = by_outcome.get(key, 0) + 1
    promotions = [(market_of(m), day) for m, t, o, day in journal if t == "decision" and o in ("promoted", "approved")]
    rollbacks = [(market_of(m), day) for m, t, o, day in journal if t == "rollback" and o in ("manual", "automatic")]
    derisks = [(market_of(m), day) for m, t, o, day in journal if t == "decision" and o == "derisk"]
    per_market = []
    for mkt in settings.markets:
        per_market.append(await _market_section(engine, conn, mkt, cycles, alarms, experiments, promotions, rollbacks,
                                                derisks, market_of))
    rep = await engine.run_reconciliation()
    return {
        "days": days,
        "first_date": window[0],
        "last_date": window[1],
        "seed": engine.seed,
        "markets": [m.symbol for m in settings.markets],
        "store": str(kept) if kept is not None else None,
        "cycles": len(cycles),
        "cycles_by_status": _count(str(c[2]) for c in cycles),
        "orders": sum(n for _, n in orders),
        "orders_by_status": {str(s): int(n) for s, n in orders},
        "fills": int(fills_run[0][0]),
        "contracts": float(fills_run[0][1]),
        "commission": float(fills_run[0][2]),
        "pnl": account.net_liquidation - start_nlv,
        "net_liquidation": account.net_liquidation,
        "max_drawdown_pct": 100.0 * max_dd,
        "positions": positions,
        "agent_phase": engine.status().agent_phase,
        "autonomy": engine.agent.autonomy.value if engine.agent is not None else None,
        "alarms": len(alarms),
        "diagnoses": sum(1 for _m, t, _o, _d in journal if t == "diagnosis"),
        "experiments": by_outcome,
        "promotions": len(promotions),
        "rollbacks": len(rollbacks),
        "derisks": len(derisks),
        "per_market": per_market,
        "reconciliation": rep,
        "last_fills": await engine.fill_journal.fills(limit=10),
    }


async def _market_section(engine: Any, conn: Any, mkt: Any, cycles: list[Any], alarms: list[tuple[str, str]],
                          experiments: list[Any], promotions: list[tuple[str, str]], rollbacks: list[tuple[str, str]],
                          derisks: list[tuple[str, str]], market_of: Any) -> dict[str, Any]:
    import json

    from hydra_engine.markets import trading_date_at

    sym = mkt.symbol
    async with conn.execute("SELECT date, open, close FROM bars WHERE market = ? AND contract = 'CONTFUT' ORDER BY date",
                            (sym,)) as cur:
        bars = [mr.SessionBar(dt.date.fromisoformat(d), float(o), float(c)) for d, o, c in await cur.fetchall()]
    mine = [c for c in cycles if c[0] == sym]
    first = dt.date.fromisoformat(mine[0][1]) if mine else None
    last = dt.date.fromisoformat(mine[-1][1]) if mine else None
    scenario = _scenario(engine, sym)
    changes = tuple(scenario.change_dates) if scenario is not None else ()
    change = mr.change_in_window(changes, first, last)
    fills = await engine.fill_journal.fills(sym)
    legs = mr.legs_from_fills(fills, lambda t: trading_date_at(mkt, t))
    multiplier = _multiplier(engine, sym)
    pnl = None
    promoted = [dt.date.fromisoformat(d[:10]) for m, d in promotions if m == sym and d]
    healed = max(promoted) if promoted else None
    """The healed champion's own record: from the day after its promotion (it trades from the next signal)."""
    pnl_healed = None
    if multiplier is not None and first is not None and last is not None:
        closes = _month_closes(engine, sym, {leg.contract for leg in legs}, last)
        sessions = [b.date for b in bars if b.date <= last]  # all: a position carried in is marked through
        daily = mr.daily_pnl(legs, closes, sessions, multiplier)
        pnl = mr.split_sum(daily, change, first)
        if healed is not None:
            pnl_healed = mr.split_sum(daily, healed + dt.timedelta(days=1), first).after
    signals = []
    for _m, day, _status, summary in mine:
        p_up = (json.loads(summary) if summary else {}).get("p_up")
        signals.append((dt.date.fromisoformat(day), float(p_up) if isinstance(p_up, (int, float)) else None))
    hits = mr.hit_rates(bars, signals, change)
    hits_healed = mr.hit_rates(bars, signals, healed + dt.timedelta(days=1)).after if healed is not None else None
    alarm_days = sorted(dt.date.fromisoformat(d) for m, d in alarms if m == sym)
    sessions = [b.date for b in bars if first is not None and b.date >= first]
    in_window = [c for c in changes if first is not None and last is not None and first <= c <= last]
    exp: dict[str, int] = {}
    for m, outcome, status in experiments:
        if market_of(m) == sym:
            key = outcome or str(status).lower()
            exp[key] = exp.get(key, 0) + 1
    return {
        "symbol": sym,
        "scenario": None if scenario is None else {"name": scenario.name, "synthetic": scenario.synthetic,
                                                   "description": scenario.description},
        "change_dates": list(changes),
        "change_in_run": change,
        "alarms": len(alarm_days),
        "alarm_dates": alarm_days,
        "alarms_before_change": sum(1 for a in alarm_days if change is not None and a < change),
        "detection": mr.detection(alarm_days, in_window, sessions),
        "experiments": exp,
        "promotions": [d for m, d in promotions if m == sym],
        "rollbacks": [d for m, d in rollbacks if m == sym],
        "derisks": [d for m, d in derisks if m == sym],
        "pnl_before": None if pnl is None else pnl.before,
        "pnl_after": None if pnl is None else pnl.after,
        "hit_before": {"hits": hits.before.hits, "n": hits.before.n, "rate": hits.before.rate},
        "hit_after": None if hits.after is None else {"hits": hits.after.hits, "n": hits.after.n, "rate": hits.after.rate},
        "healed_since": healed,
        "pnl_healed": pnl_healed,
        "hit_healed": None if hits_healed is None else {"hits": hits_healed.hits, "n": hits_healed.n,
                                                       "rate": hits_healed.rate},
    }


def _scenario(engine: Any, symbol: str) -> Any:
    try:
        return engine.exchange.universe.scenario(symbol)
    except (AttributeError, KeyError, ValueError):
        return None


def _multiplier(engine: Any, symbol: str) -> float | None:
    try:
        spec = engine.exchange.universe.spec(symbol)
    except (AttributeError, KeyError, ValueError):
        return None
    return float(spec.multiplier) if spec is not None else None


def _month_closes(engine: Any, symbol: str, months: set[str], last: dt.date) -> dict[str, dict[dt.date, float]]:
    """Daily closes of each month traded, from the embedded exchange's history of that month."""
    universe = engine.exchange.universe
    out: dict[str, dict[dt.date, float]] = {}
    for fm in universe.months(symbol, last, include_expired=True):
        if fm.contract_month[:6] in months and fm.contract_month[:6] not in out:
            bars = universe.daily_bars(fm.con_id, last, 100_000)
            out[fm.contract_month[:6]] = {b.date: float(b.close) for b in bars}
    return out


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------- rendering


def render(r: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from hydra_tui.commands.report_tables import fills_table, kv_table, reconciliation_panels

    out = common.console()
    out.print(Text(f"HYDRA replay: {r['days']} trading day(s) on the embedded exchange ({r['first_date'] or '-'} .. "
                   f"{r['last_date'] or '-'}), seed {r['seed']}, markets {', '.join(r['markets'])}", style="bold"))
    out.print(kv_table([
        ("cycles", f"{r['cycles']} ({', '.join(f'{k} {v}' for k, v in r['cycles_by_status'].items()) or 'none'})"),
        ("orders", f"{r['orders']} ({', '.join(f'{k} {v}' for k, v in sorted(r['orders_by_status'].items())) or 'none'})"),
        ("fills", f"{r['fills']} ({r['contracts']:g} contracts, commission {r['commission']:,.2f})"),
        ("P&L", Text(f"{r['pnl']:+,.2f} (net liquidation {r['net_liquidation']:,.2f})",
                     style="green" if r["pnl"] > 0 else "red" if r["pnl"] < 0 else "")),
        ("max drawdown", f"{r['max_drawdown_pct']:.2f} % of peak (closing marks)"),
        ("positions", ", ".join(f"{k} {v:+g}" for k, v in r["positions"].items()) or "flat"),
        ("agent", f"{r['alarms']} drift alarm(s), {r['diagnoses']} diagnosis(es), "
                  f"{sum(r['experiments'].values())} experiment(s) "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(r['experiments'].items())) or 'none'}), "
                  f"{r['promotions']} promotion(s), {r['rollbacks']} rollback(s), {r['derisks']} de-risk(s); "
                  f"phase {r['agent_phase']}; autonomy {r.get('autonomy') or '-'}"),
        ("store", r["store"] or "temporary (gone; keep it with --data-dir DIR)"),
    ]))
    heal = Table(title="Per market: drift and healing", title_justify="left", header_style="bold")
    for col in ("Market", "Scenario", "True change", "Alarms", "First alarm after it", "Experiments",
                "Promotions", "Rollbacks", "De-risk"):
        heal.add_column(col, overflow="fold", no_wrap=col in ("Market", "Scenario", "True change", "First alarm after it"))
    money = Table(title="Per market: before and after the change, and the healed champion since its promotion",
                  title_justify="left", header_style="bold")
    for col in ("Market", "Split at", "P&L before", "P&L after", "Hit rate before", "Hit rate after",
                "P&L healed", "Hit rate healed"):
        money.add_column(col, justify="left" if col in ("Market", "Split at") else "right", no_wrap=True)
    for m in r["per_market"]:
        sc = m["scenario"] or {}
        det = "; ".join(f"{d['first_alarm'] or 'none'}" + (f" (+{d['delay_sessions']} sessions)" if d["delay_sessions"] is not None else "")
                        for d in m["detection"]) or "-"
        changes = ", ".join(str(c) for c in m["change_dates"]) or ("none (real history)" if sc and not sc.get("synthetic") else "none")
        heal.add_row(m["symbol"], str(sc.get("name") or "-"), changes,
                     f"{m['alarms']}" + (f" ({m['alarms_before_change']} before it)" if m["change_in_run"] else ""),
                     det, ", ".join(f"{k} {v}" for k, v in sorted(m["experiments"].items())) or "0",
                     ", ".join(m["promotions"]) or "0", ", ".join(m["rollbacks"]) or "0", ", ".join(m["derisks"]) or "0")
        split = str(m["change_in_run"]) if m["change_in_run"] else "no change in this run"
        money.add_row(m["symbol"], split, _money(m["pnl_before"]), _money(m["pnl_after"]), _hit(m["hit_before"]),
                      _hit(m["hit_after"]), _money(m.get("pnl_healed")), _hit(m.get("hit_healed")))
    out.print(heal)
    out.print(money)
    for part in reconciliation_panels(r["reconciliation"]):
        out.print(part)
    if r["last_fills"]:
        out.print(fills_table(r["last_fills"], "Last fills"))


def _money(v: float | None) -> Any:
    from rich.text import Text

    if v is None:
        return "-"
    return Text(f"{v:+,.2f}", style="green" if v > 0 else "red" if v < 0 else "")


def _hit(h: dict[str, Any] | None) -> str:
    if h is None:
        return "-"
    if not h["n"]:
        return "- (0 days)"
    return f"{100 * h['rate']:.1f} % ({h['hits']}/{h['n']})"
