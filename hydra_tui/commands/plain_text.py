"""Plain-text tables and the reconciliation as text: for logs, e-mails and callers that want no
Rich markup (the commands print Rich tables, see ``report_tables``)."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from hydra_engine.execution.reconciler import MarketReconciliation, ReconciliationReport


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table, columns padded to their widest cell."""
    body = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(out)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.2f}"
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("-", "").isdigit()


def _f(v: float | None, spec: str = ",.4f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


# ---------------------------------------------------------------------------------------------- fills


def fills_table(fills: Sequence[Any]) -> str:
    rows = [
        (f.fill_time, f.symbol, f.direction, f.qty, f.limit_price, f.fill_price, f.predicted_slippage,
         f.actual_slippage, None if f.latency_ms is None else round(f.latency_ms / 1000.0, 1))
        for f in fills
    ]
    return table(("Time", "Symbol", "Dir", "Qty", "Order Price", "Fill Price", "Pred Slip", "Actual Slip", "Latency s"), rows)


def reconciliation_text(rep: ReconciliationReport) -> str:
    """One panel per market (price units and bps, its own verdict and multiplier) and, for the
    all-markets report, the pooled line in bps only (price units do not add across markets)."""
    if rep.pooled is None:
        return _market_panel(f"Reconciliation {rep.symbol}" if rep.symbol else "Reconciliation", rep.markets[0]
                             if rep.markets else rep)
    lines = [f"Reconciliation, per market: {rep.n_fills} live fill(s) in {len(rep.markets)} market(s), "
             f"{rep.n_delayed_excluded} delayed excluded; verdict {rep.verdict} ({rep.verdict_reason})"]
    lines += [_market_panel(f"Market {m.symbol}", m) for m in rep.markets]
    p = rep.pooled
    b = p.bps
    lines.append(
        f"POOLED ({p.n_markets} markets, bps only, for a glance; the verdicts above are per market): "
        f"{p.n_fills} fill(s), mean predicted {_f(b.mean_predicted, '.2f')} bps, mean actual "
        f"{_f(b.mean_actual, '.2f')} bps, bias {_f(b.bias, '+.2f')} bps "
        f"[{_f(b.bias_ci_low, '+.2f')}, {_f(b.bias_ci_high, '+.2f')}], RMSE {_f(b.rmse, '.2f')} bps, "
        f"Pearson {_f(b.pearson, '.3f')}, Spearman {_f(p.spearman, '.3f')}, "
        f"pessimism multiplier {_f(b.pessimism_multiplier, '.2f')}")
    return "\n".join(lines)


def _market_panel(title: str, m: MarketReconciliation | ReconciliationReport) -> str:
    p, b = m.price, m.bps
    return "\n".join([
        f"{title}: {m.n_fills} live fill(s), {m.n_delayed_excluded} delayed excluded; verdict {m.verdict} "
        f"({m.verdict_reason})",
        table(("", "Price units", "bps"), [
            ("mean predicted", p.mean_predicted, b.mean_predicted),
            ("mean actual", p.mean_actual, b.mean_actual),
            ("bias (pred - actual)", p.bias, b.bias),
            ("bias 95% CI low", p.bias_ci_low, b.bias_ci_low),
            ("bias 95% CI high", p.bias_ci_high, b.bias_ci_high),
            ("RMSE", p.rmse, b.rmse),
            ("Pearson", p.pearson, b.pearson),
            ("Spearman (bps ranks)", m.spearman, m.spearman),
            ("slope", p.slope, b.slope),
            ("intercept", p.intercept, b.intercept),
            ("pessimism multiplier", p.pessimism_multiplier, b.pessimism_multiplier),
        ]),
    ])
