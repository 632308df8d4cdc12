"""Rich renderers for the commands: fills, the reconciliation panels, status, journal, diagnosis.

The plan's conventions hold everywhere: fills with Time, Symbol, Dir, Qty, Order Price, Fill
Price, Pred Slip, Actual Slip, Latency (BUY green, SELL red); the reconciliation panel with N
Fills, Mean Predicted, Mean Actual, Bias, RMSE, Correlation, Pessimism Multiplier, the bias
green below 0.1, yellow below 0.5 and red from 0.5 (price units; bps beside it), and the warning
"Paper fills are significantly optimistic" when the multiplier exceeds 1.5. Renderers return Rich
objects; the caller prints them (Rich prints plain text when stdout is not a terminal).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from hydra_tui.commands.status import Health
    from hydra_tui.commands.store_reader import StoreTarget

OPTIMISTIC_MULTIPLIER = 1.5
OPTIMISTIC_WARNING = "Paper fills are significantly optimistic"
LEVEL_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "down": "bold red"}


def num(v: Any, spec: str = ",.4f", unit: str = "") -> str:
    """A number for a cell ('-' for missing or non-finite)."""
    if v is None or isinstance(v, bool):
        return "-" if v is None else str(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return "-"
        return format(v, spec) + unit
    return str(v)


def when(v: Any) -> str:
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return "-" if v is None else str(v)


def direction(side: str) -> Text:
    return Text(side, style="green" if side == "BUY" else "red" if side == "SELL" else "")


def bias_style(bias_price_units: float | None) -> str:
    """Green below 0.1, yellow below 0.5, red from 0.5 (absolute bias, price units)."""
    if bias_price_units is None or not math.isfinite(bias_price_units):
        return "dim"
    b = abs(bias_price_units)
    return "green" if b < 0.1 else "yellow" if b < 0.5 else "red"


# ---------------------------------------------------------------------------------------------- fills


def fills_table(fills: Sequence[Any], title: str = "Fills") -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in (("Time", "left"), ("Symbol", "left"), ("Dir", "left"), ("Qty", "right"),
                          ("Order Price", "right"), ("Fill Price", "right"), ("Pred Slip", "right"),
                          ("Actual Slip", "right"), ("Latency", "right")):
        t.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for f in fills:
        latency = None if f.latency_ms is None else f"{f.latency_ms / 1000.0:,.1f} s"
        t.add_row(when(f.fill_time), f.symbol, direction(f.direction), num(f.qty, "g"), num(f.limit_price, ",.4g"),
                  num(f.fill_price, ",.4f"), num(f.predicted_slippage), num(f.actual_slippage), latency or "-")
    return t


# ---------------------------------------------------------------------------------------------- reconciliation


def reconciliation_panels(rep: Any) -> list[RenderableType]:
    """One panel per market and, for the all-markets report, the pooled line in bps only (price
    units never add across markets: CL is quoted in dollars, ZO in cents)."""
    if rep.pooled is None:
        one = rep.markets[0] if rep.markets else rep
        return [market_panel(f"Reconciliation {rep.symbol}" if rep.symbol else "Reconciliation", one)]
    out: list[RenderableType] = [market_panel(f"Reconciliation {m.symbol}", m) for m in rep.markets]
    if not rep.markets:
        out.append(Text(f"Reconciliation: no live fills yet; verdict {rep.verdict} ({rep.verdict_reason})"))
    p, b = rep.pooled, rep.pooled.bps
    line = Text.assemble(
        ("POOLED", "bold"),
        f" ({p.n_markets} market(s), bps only; the verdicts above are per market): {p.n_fills} fill(s), "
        f"mean predicted {num(b.mean_predicted, '.2f')} bps, mean actual {num(b.mean_actual, '.2f')} bps, bias ",
        (f"{num(b.bias, '+.2f')} bps", "bold"),
        f", RMSE {num(b.rmse, '.2f')} bps, correlation {num(b.pearson, '.3f')}, "
        f"pessimism multiplier {num(b.pessimism_multiplier, '.2f')}; verdict {rep.verdict}",
    )
    out.append(line)
    if _over(b.pessimism_multiplier):
        out.append(Text(f"{OPTIMISTIC_WARNING} (pooled multiplier {b.pessimism_multiplier:.2f} > "
                        f"{OPTIMISTIC_MULTIPLIER})", style="bold red"))
    return out


def _over(multiplier: float | None) -> bool:
    return multiplier is not None and math.isfinite(multiplier) and multiplier > OPTIMISTIC_MULTIPLIER


def market_panel(title: str, m: Any) -> Panel:
    """The plan's panel for one market: price units and bps side by side, bias coloured."""
    p, b = m.price, m.bps
    style = bias_style(p.bias)
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    t.add_column("", no_wrap=True)
    t.add_column("Price units", justify="right", no_wrap=True)
    t.add_column("bps", justify="right", no_wrap=True)
    t.add_row("N Fills", str(m.n_fills), str(m.n_fills))
    t.add_row("Mean Predicted", num(p.mean_predicted), num(b.mean_predicted, ",.2f"))
    t.add_row("Mean Actual", num(p.mean_actual), num(b.mean_actual, ",.2f"))
    t.add_row("Bias", Text(num(p.bias, "+,.4f"), style=style), Text(num(b.bias, "+,.2f"), style=style))
    t.add_row("Bias 95% CI", f"{num(p.bias_ci_low, '+,.4f')} .. {num(p.bias_ci_high, '+,.4f')}",
              f"{num(b.bias_ci_low, '+,.2f')} .. {num(b.bias_ci_high, '+,.2f')}")
    t.add_row("RMSE", num(p.rmse), num(b.rmse, ",.2f"))
    t.add_row("Correlation", num(p.pearson, ".3f"), num(b.pearson, ".3f"))
    t.add_row("Pessimism Multiplier", num(p.pessimism_multiplier, ".2f"), num(b.pessimism_multiplier, ".2f"))
    parts: list[RenderableType] = [t, Text(f"verdict: {m.verdict} ({m.verdict_reason}); "
                                           f"{m.n_delayed_excluded} delayed-data fill(s) excluded", style="dim")]
    if _over(p.pessimism_multiplier) or _over(b.pessimism_multiplier):
        parts.append(Text(OPTIMISTIC_WARNING, style="bold red"))
    return Panel(Group(*parts), title=title, title_align="left", expand=False)


# ---------------------------------------------------------------------------------------------- status


def status_panel(health: Health, target: StoreTarget) -> Panel:
    e = health.engine
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    t.add_row("store", str(target.directory))
    t.add_row("engine", f"pid {health.pid}" if health.pid else "not running")
    if health.snapshot_age_s is not None:
        t.add_row("status written", f"{health.snapshot_age_s:.1f} s ago")
    if e:
        t.add_row("mode", Text(str(e.get("mode", "-")), style="bold red" if e.get("mode") == "LIVE" else ""))
        age = e.get("last_message_age_s")
        t.add_row("connection", f"{e.get('connection', '-')}" + (f" (last message {age:.1f} s ago)" if age is not None else ""))
        t.add_row("trading state", str(e.get("trading_state", "-")) + ("  PAUSED" if e.get("paused") else ""))
        champs = e.get("champions") or {}
        shown = ", ".join(f"{m} {v or '-'}" for m, v in champs.items()) if champs else (e.get("champion") or "-")
        t.add_row("agent", f"{e.get('agent_phase', '-')}; champion{'s' if len(champs) > 1 else ''} {shown}")
        t.add_row("clock", str(e.get("now", "-")))
        t.add_row("net liquidation", f"{num(e.get('net_liquidation'), ',.2f')}; daily P&L {num(e.get('daily_pnl'), '+,.2f')}; "
                                      f"drawdown {num(_pct(e.get('drawdown')), '.2f', ' %')}")
        positions = e.get("positions") or {}
        t.add_row("positions", ", ".join(f"{k} {v:+g}" for k, v in positions.items()) or "flat")
        t.add_row("working orders", "; ".join(e.get("working_orders") or []) or "none")
        if e.get("next_decision_market"):
            t.add_row("next decision", f"{e['next_decision_market']} at {e.get('next_decision_at')}")
    reasons = Text("\n".join(f"- {r}" for r in health.reasons)) if health.reasons else Text("all checks pass", style="green")
    return Panel(Group(t, Text(""), reasons), title=Text(f"HYDRA {health.level.upper()} (exit {health.exit_code})",
                                                          style=LEVEL_STYLE[health.level]),
                 title_align="left", expand=False)


def _pct(v: Any) -> float | None:
    return None if not isinstance(v, (int, float)) else 100.0 * float(v)


# ---------------------------------------------------------------------------------------------- journal


def journal_table(rows: Iterable[Any], title: str) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for name in ("When", "Source", "Type", "Outcome", "Market", "Actor", "Summary"):
        t.add_column(name, no_wrap=name != "Summary", overflow="fold")
    for r in rows:
        t.add_row(r.when[:16].replace("T", " "), r.source, r.type, Text(r.outcome, style=_outcome_style(r.outcome)), r.market or "-",
                  r.actor or "-", r.summary)
    return t


def _outcome_style(outcome: str) -> str:
    if outcome in ("alarm", "failed_gate", "error", "timeout", "cycle_failed", "automatic", "derisk", "FAILED"):
        return "red"
    if outcome in ("promoted", "approved", "awaiting_approval", "selected"):
        return "green"
    return ""


# ---------------------------------------------------------------------------------------------- diagnosis


def detectors_table(readings: Sequence[Mapping[str, Any]], title: str) -> Table:
    """Each detector's statistic against its threshold; "Use" is how near the alarm it is (100 % at the
    threshold; a p-value detector alarms below its threshold, so its use is threshold / p)."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in (("Stream", "left"), ("Detector", "left"), ("Statistic", "right"), ("Alarm at", "right"),
                          ("Use", "right"), ("", "left")):
        t.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in readings:
        stat, thr = r.get("statistic"), r.get("threshold")
        lower = bool(r.get("alarm_below"))
        use = None
        if isinstance(stat, (int, float)) and isinstance(thr, (int, float)):
            use = (thr / stat if stat > 0 else math.inf) if lower else (stat / thr if thr else None)
        t.add_row(str(r.get("stream")), str(r.get("detector")), num(stat, ",.4g"), ("< " if lower else ">= ") + num(thr, ",.4g"),
                  num(None if use is None else min(100 * use, 999.0), ".0f", " %"),
                  Text("ALARM", style="bold red") if r.get("alarm") else Text(""))
    return t


def kv_table(rows: Iterable[tuple[str, Any]]) -> Table:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(k, v if isinstance(v, Text) else Text(str(v)))
    return t
