"""The soak's verdicts, checked by code against the exchange's own record and the engine's store.

Each check returns a ``Check``: its name (the plan's gate wording), whether it passed, the figures
behind it and, when it failed, what to look at. Nothing is judged by eye.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra_engine.broker.sync import execution_base
from hydra_engine.sim.audit_log import audit_path, read_audit
from hydra_tui.soak.plan import FAULT_KINDS
from hydra_tui.soak.runner import SoakRun

ACCOUNT = "DU1234567"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str
    problems: tuple[str, ...] = ()


@dataclass(slots=True)
class SoakFacts:
    """What the checks and the report read: the exchange's record, the store's rows, the run."""

    run: SoakRun
    exchange_orders: list[dict[str, Any]] = field(default_factory=list)
    exchange_executions: list[dict[str, Any]] = field(default_factory=list)
    exchange_positions: dict[int, float] = field(default_factory=dict)
    faults_fired: Counter[str] = field(default_factory=Counter)
    fills: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)
    agent: list[dict[str, Any]] = field(default_factory=list)
    breakers: list[dict[str, Any]] = field(default_factory=list)


def _rows(con: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def gather(run: SoakRun) -> SoakFacts:
    facts = SoakFacts(run)
    for rec in read_audit(audit_path(run.state_path)):
        if rec.get("type") == "order" and rec.get("account") == ACCOUNT:
            facts.exchange_orders.append(rec)
        elif rec.get("type") == "execution" and rec.get("account") == ACCOUNT:
            facts.exchange_executions.append(rec)
    state = json.loads(run.state_path.read_text())
    for acct in state.get("accounts", []):
        if acct.get("account_id") == ACCOUNT:
            for pos in acct.get("positions") or []:
                if float(pos.get("qty", 0.0)):
                    facts.exchange_positions[int(pos["con_id"])] = float(pos["qty"])
    facts.faults_fired = run.plan.fired_kinds(state)
    db = run.data_dir / f"ib-{ACCOUNT}" / "hydra.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        facts.fills = _rows(con, "SELECT * FROM fills ORDER BY id")
        facts.orders = _rows(con, "SELECT * FROM orders ORDER BY created_at")
        facts.cycles = _rows(con, "SELECT market, trading_date, status, trigger, attempts, summary FROM cycles")
        facts.ops = _rows(con, "SELECT at, kind, command, actor, message, detail FROM ops_journal ORDER BY id")
        facts.agent = _rows(con, "SELECT trading_date, market, entry_type, outcome, summary FROM agent_journal ORDER BY id")
        facts.breakers = _rows(con, "SELECT * FROM breaker_state")
    finally:
        con.close()
    return facts


def check_fills_exactly_once(f: SoakFacts) -> Check:
    """Every fill the exchange booked is in the journal exactly once; nothing else is. A fill is an
    execId's base: IB's correction of a fill (a new execId, last group one higher) is the same fill
    and must not be journalled as a second one."""
    booked = Counter(e["exec_id"] for e in f.exchange_executions)
    fills = Counter(execution_base(e) for e in booked)
    corrections = sum(n - 1 for n in fills.values())
    journalled = Counter(execution_base(x["exec_id"]) for x in f.fills)
    problems = [f"lost {b}" for b in sorted(set(fills) - set(journalled))]
    problems += [f"not booked by the exchange {b}" for b in sorted(set(journalled) - set(fills))]
    problems += [f"journalled {n} times {b}" for b, n in sorted(journalled.items()) if n > 1]
    return Check("every fill journalled exactly once", not problems,
                 f"{len(fills)} fills booked ({len(booked)} executions, {corrections} of them corrections), "
                 f"{sum(journalled.values())} journalled", tuple(problems))


def check_orders_once(f: SoakFacts) -> Check:
    """No orderRef reached the exchange twice (a restart never re-sends a decided order)."""
    perms: dict[str, set[int]] = defaultdict(set)
    for o in f.exchange_orders:
        if o.get("order_ref"):
            perms[o["order_ref"]].add(int(o["perm_id"]))
    twice = sorted(ref for ref, p in perms.items() if len(p) > 1)
    unknown = sorted(set(perms) - {o["order_ref"] for o in f.orders})
    problems = [f"orderRef {r} placed {len(perms[r])} times" for r in twice]
    problems += [f"orderRef {r} at the exchange but not in the store" for r in unknown]
    per_decision = Counter((o["market"], o["trading_date"], o["purpose"], o["parent_ref"]) for o in f.orders
                           if o["status"] != "REJECTED" and o.get("purpose") in ("", "target", "open", "flatten"))
    return Check("no order sent twice", not problems,
                 f"{len(perms)} orderRefs reached the exchange, {len(f.orders)} orders in the store"
                 f" ({len(per_decision)} decisions)", tuple(problems))


def check_positions(f: SoakFacts) -> Check:
    """The journal's fills explain the exchange's positions exactly, per contract."""
    from_fills: dict[int, float] = defaultdict(float)
    by_ref = {o["order_ref"]: o for o in f.orders}
    for x in f.fills:
        con_id = (by_ref.get(x["order_ref"]) or {}).get("con_id")
        if con_id is None:
            continue
        from_fills[int(con_id)] += x["qty"] if x["direction"] == "BUY" else -x["qty"]
    keys = set(from_fills) | set(f.exchange_positions)
    problems = [f"conId {k}: journal {from_fills.get(k, 0.0):g}, exchange {f.exchange_positions.get(k, 0.0):g}"
                for k in sorted(keys) if abs(from_fills.get(k, 0.0) - f.exchange_positions.get(k, 0.0)) > 1e-9]
    unexplained = [o["message"] for o in f.ops if o["kind"] == "POSITION_CHANGE"]
    problems += [f"unexplained position journalled: {m}" for m in unexplained]
    return Check("positions agree with the exchange", not problems,
                 f"{len(f.exchange_positions)} open position(s) at the exchange, {len(unexplained)} unexplained entries",
                 tuple(problems))


def check_breaker_limits(f: SoakFacts) -> Check:
    """No order passed a tripped breaker's limits: each order sent carries the gate's trading state
    at its approval; none went out HALTED, and in REDUCING only orders that reduce a position."""
    problems: list[str] = []
    states: Counter[str] = Counter()
    sent = [o for o in f.orders if o["status"] not in ("INTENT",) and o["order_ref"] in {x["order_ref"] for x in f.exchange_orders}]
    for o in sent:
        detail = json.loads(o.get("detail") or "{}")
        state = detail.get("trading_state")
        states[str(state)] += 1
        if state is None:
            problems.append(f"{o['order_ref']} reached the exchange without the gate's trading state recorded")
        elif state == "HALTED" or (state == "REDUCING" and not detail.get("reduces", False)):
            problems.append(f"{o['order_ref']} sent in {state} ({'reducing' if detail.get('reduces') else 'opening'})")
    trips = sum(1 for o in f.ops if o["kind"] == "ALERT" and "breaker" in o["command"])
    return Check("no limit breached", not problems,
                 f"{len(sent)} orders approved in {dict(states)}; {trips} breaker alert(s)", tuple(problems))


def check_decisions(f: SoakFacts, days: Sequence[dt.date], markets: Sequence[str]) -> Check:
    """Every decision due ran exactly once, or is journalled as skipped with its reason."""
    from hydra_engine.markets import CATALOG, is_trading_day

    rows = {(c["market"], c["trading_date"]): c for c in f.cycles}
    problems = []
    due = 0
    ran: Counter[str] = Counter()
    for m in markets:
        for d in days[:-1]:  # the last day's decision may fall after the soak's end
            if not is_trading_day(CATALOG[m], d):
                continue
            due += 1
            c = rows.get((m, d.isoformat()))
            if c is None:
                problems.append(f"{m} {d}: no cycle")
            elif c["status"] not in ("FINISHED", "SKIPPED", "INTERRUPTED"):
                problems.append(f"{m} {d}: cycle {c['status']}")
            elif c["status"] == "SKIPPED" and not (json.loads(c["summary"] or "{}").get("skipped")):
                problems.append(f"{m} {d}: skipped without a reason")
            else:
                ran[c["status"]] += 1
    running = [k for k, c in rows.items() if c["status"] == "RUNNING"]
    problems += [f"{m} {d}: left RUNNING" for m, d in running]
    return Check("every decision ran once or was skipped with a reason", not problems,
                 f"{due} decisions due in the window (its last day's may fall after the end): "
                 + ", ".join(f"{k} {v}" for k, v in sorted(ran.items())), tuple(problems))


def check_recovered(f: SoakFacts) -> Check:
    """No unrecoverable error: every kill was followed by a start, the engine stopped cleanly at the end."""
    run = f.run
    problems = []
    if run.final_engine_exit != 0:
        problems.append(f"the engine's final stop exited {run.final_engine_exit}")
    if run.final_exchange_exit != 0:
        problems.append(f"the exchange's final stop exited {run.final_exchange_exit}")
    if run.engine_starts < len(run.kills) + len(run.clean_restarts) + 1:
        problems.append(f"{run.engine_starts} engine starts for {len(run.kills)} kills and "
                        f"{len(run.clean_restarts)} clean restarts")
    problems += [f"a clean stop mid-order exited {r}" for r in run.clean_restarts if not r.startswith("exit 0 ")]
    return Check("zero unrecoverable errors", not problems,
                 f"{len(run.kills)} kills, {len(run.clean_restarts)} clean restarts, {run.engine_starts} starts "
                 f"({len(run.engine_start_failures)} retried), {len(run.exchange_restarts)} exchange restarts",
                 tuple(problems))


def rss_slope_mb_per_hour(samples: Sequence[tuple[float, float]], skip_s: float = 20.0) -> float | None:
    """Least-squares slope of the engine's RSS over wall time (samples from each start's first
    ``skip_s`` seconds left out: imports and the first fit)."""
    pts = [(t, r) for t, r in samples if t >= skip_s]
    if len(pts) < 10:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mr = sum(r for _, r in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    return None if var == 0 else sum((t - mt) * (r - mr) for t, r in pts) / var * 3600.0


MEMORY_MIN_SPAN_S = 300.0
"""Fewer wall seconds of samples than this (a short soak) judge the peak only: a slope over a few
restarts is start-up growth, not a leak."""


def check_memory(f: SoakFacts, limit_mb_per_hour: float = 50.0, peak_limit_mb: float = 600.0) -> Check:
    samples = f.run.rss_samples
    span = (samples[-1][0] - samples[0][0]) if len(samples) > 1 else 0.0
    slope = rss_slope_mb_per_hour(samples) if span >= MEMORY_MIN_SPAN_S else None
    peak = max((r for _, r in samples), default=0.0)
    ok = peak < peak_limit_mb and (slope is None or slope < limit_mb_per_hour)
    shown = "n/a (run too short to judge a slope)" if slope is None else f"{slope:+.1f} MB/h"
    return Check("memory bounded", ok, f"RSS peak {peak:.0f} MB (limit {peak_limit_mb:g}), slope {shown} "
                 f"(limit {limit_mb_per_hour:g})")


def check_faults(f: SoakFacts, minimum: int = 50) -> Check:
    missing = [k for k in FAULT_KINDS if f.faults_fired.get(k, 0) == 0]
    total = sum(f.faults_fired.values())
    problems = [f"fault kind {k} never fired" for k in missing]
    if total < minimum:
        problems.append(f"{total} faults fired, fewer than {minimum}")
    return Check("faults injected and survived", not problems, f"{total} fired: {dict(sorted(f.faults_fired.items()))}",
                 tuple(problems))


def check_healing(f: SoakFacts) -> Check:
    """At least one complete self-healing cycle inside the window: drift alarms, an experiment, a
    promotion of its candidate, and the healed champion trading afterwards (its episode may have
    opened before the window: its first alarm is reported beside)."""
    start = f.run.plan.start.isoformat()
    per: dict[str, dict[str, Any]] = defaultdict(dict)
    for e in f.agent:
        day = e["trading_date"] or ""
        st = per[e["market"]]
        if e["entry_type"] == "observation" and e["outcome"] == "alarm":
            st.setdefault("first alarm", day)
            if day >= start:
                st.setdefault("alarm in window", day)
        elif e["entry_type"] == "experiment" and day >= start:
            st.setdefault("experiment", day)
        elif e["entry_type"] == "decision" and e["outcome"] in ("promoted", "approved") and day >= start:
            st.setdefault("promotion", day)
    healed = []
    for m, st in per.items():
        if not {"alarm in window", "experiment", "promotion"} <= set(st) or st["experiment"] > st["promotion"]:
            continue
        traded = [c for c in f.cycles if c["market"] == m and c["trading_date"] > st["promotion"]
                  and json.loads(c["summary"] or "{}").get("p_up") is not None]
        if traded:
            st["healed champion traded"] = f"{len(traded)} days"
            healed.append(m)
    order = ("first alarm", "alarm in window", "experiment", "promotion", "healed champion traded")
    detail = "; ".join(f"{m}: " + ", ".join(f"{k} {st[k]}" for k in order if k in st)
                       for m, st in per.items() if st) or "no alarm"
    return Check("at least one complete self-healing cycle", bool(healed), detail)


def run_checks(f: SoakFacts) -> list[Check]:
    plan = f.run.plan
    return [check_fills_exactly_once(f), check_orders_once(f), check_positions(f), check_breaker_limits(f),
            check_decisions(f, plan.trading_days(), plan.markets), check_recovered(f), check_memory(f),
            check_faults(f), check_healing(f)]
