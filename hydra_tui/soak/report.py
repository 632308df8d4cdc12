"""The soak's report in the shape of the plan's gate checklist (four weeks of stable paper trading,
at least one complete self-healing cycle, zero unrecoverable errors, verified circuit breakers and
reconnection), as terminal text and Markdown, with the figures behind each line."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass

from hydra_tui.soak.checks import ACCOUNT, Check, SoakFacts, rss_slope_mb_per_hour


@dataclass(frozen=True, slots=True)
class SoakReport:
    checks: tuple[Check, ...]
    figures: tuple[tuple[str, str], ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def text(self) -> str:
        width = max(len(k) for k, _ in self.figures)
        lines = ["HYDRA soak: " + ("PASSED" if self.passed else "FAILED"), ""]
        lines += [f"  {k.ljust(width)}  {v}" for k, v in self.figures]
        lines += ["", "Gate checklist:"]
        for c in self.checks:
            lines.append(f"  [{'x' if c.passed else ' '}] {c.name}: {c.detail}")
            lines += [f"        - {p}" for p in c.problems[:20]]
            if len(c.problems) > 20:
                lines.append(f"        - ... {len(c.problems) - 20} more")
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        out = [f"# HYDRA soak: {'PASSED' if self.passed else 'FAILED'}", "", "| | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.figures]
        out += ["", "## Gate checklist", ""]
        for c in self.checks:
            out.append(f"- [{'x' if c.passed else ' '}] **{c.name}**: {c.detail}")
            out += [f"  - {p}" for p in c.problems[:50]]
        return "\n".join(out) + "\n"


def _reconciliation(f: SoakFacts) -> str:
    """The reconciler's verdict per market on the soak's store (read-only)."""
    import aiosqlite

    from hydra_engine.execution.reconciler import SlippageReconciler

    async def verdicts() -> str:
        db = f.run.data_dir / f"ib-{ACCOUNT}" / "hydra.db"
        async with aiosqlite.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rep = await SlippageReconciler(conn).reconcile(None)
        markets = getattr(rep, "markets", ()) or ()
        parts = [f"{m.symbol} {m.verdict} (x{m.bps.pessimism_multiplier:.2f} bps, {m.n_fills} fills)"
                 if m.bps.pessimism_multiplier is not None else f"{m.symbol} {m.verdict} ({m.n_fills} fills)"
                 for m in markets]
        return "; ".join(parts) or str(getattr(rep, "verdict", "no fills"))

    try:
        return asyncio.run(verdicts())
    except Exception as exc:  # noqa: BLE001 - a report line, not a reason to lose the report
        return f"unavailable ({type(exc).__name__}: {exc})"


def build_report(f: SoakFacts, checks: list[Check]) -> SoakReport:
    run, plan = f.run, f.run.plan
    days = plan.trading_days()
    kills = Counter(k.kind for k in run.kills)
    decisions = Counter((e["outcome"]) for e in f.agent if e["entry_type"] == "decision")
    rollbacks = sum(1 for e in f.agent if e["entry_type"] == "rollback")
    alerts = Counter(o["command"] for o in f.ops if o["kind"] == "ALERT")
    delivered = Counter(json.loads(o["detail"] or "{}").get("outcome", "?") for o in f.ops if o["kind"] == "ALERT")
    slope = rss_slope_mb_per_hour(run.rss_samples)
    figures = (
        ("trading days", f"{len(days)} ({days[0]} .. {days[-1]}), markets {', '.join(plan.markets)}"),
        ("cycles", f"{len(f.cycles)} ({', '.join(f'{k} {v}' for k, v in sorted(Counter(c['status'] for c in f.cycles).items()))}), "
                   f"{sum(1 for c in f.cycles if days[0].isoformat() <= c['trading_date'] <= days[-1].isoformat())} in the window"),
        ("orders", f"{len(f.orders)} in the store, {len(f.exchange_orders)} at the exchange, warm-up included "
                   f"({', '.join(f'{k} {v}' for k, v in sorted(Counter(o['status'] for o in f.orders).items()))})"),
        ("fills", f"{len(f.fills)} journalled, {len(f.exchange_executions)} executions at the exchange "
                  "(a correction is a second execution of one fill)"),
        ("faults", f"{sum(f.faults_fired.values())} fired: "
                   + ", ".join(f"{k} {v}" for k, v in sorted(f.faults_fired.items()))),
        ("kills", f"{len(run.kills)} SIGKILLs of the engine ({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}), "
                  f"{len(run.clean_restarts)} SIGTERM restart(s) mid-order, {run.engine_starts} starts, "
                  f"{len(run.engine_start_failures)} retried"),
        ("warm-up", f"{run.warmup_days} trading days lock-step before the window, same account and store"
                    if run.warmup_days else "none: a new account and store at the window's start"),
        ("exchange restarts", f"{len(run.exchange_restarts)} from its state file; daily gateway restarts in the fault plan"),
        ("breaker trips", f"{sum(n for k, n in alerts.items() if 'breaker' in k)} alerted"),
        ("alerts", (", ".join(f"{k} {v}" for k, v in sorted(alerts.items())) or "none")
                   + (f" ({', '.join(f'{k} {v}' for k, v in sorted(delivered.items()))})" if delivered else "")),
        ("promotions", f"{decisions.get('promoted', 0) + decisions.get('approved', 0)}"),
        ("rollbacks", f"{rollbacks}"),
        ("de-risks", f"{decisions.get('derisk', 0)}"),
        ("reconciliation", _reconciliation(f)),
        ("engine memory", f"peak {max((r for _, r in run.rss_samples), default=0.0):.0f} MB, slope "
                          f"{'n/a' if slope is None else f'{slope:+.1f} MB/h'}"),
        ("wall time", f"{run.wall_s / 60:.1f} min at {plan.speed:g}x"),
    )
    return SoakReport(tuple(checks), figures)
