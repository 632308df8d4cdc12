"""``hydra-tui replay`` and ``hydra-tui fill-report``: plain-text reports, no Textual.

``replay`` plays N trading days lock-step on the embedded exchange (a fresh temporary store unless
``--keep-store``) and reports days, cycles, orders, fills, P&L, drawdown, agent decisions and the
slippage reconciliation. ``fill-report`` reads the store of the configured broker and account
(read-only, so it works while an engine runs) and prints the fills and, with ``--reconcile``,
the reconciliation report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import tempfile
from pathlib import Path
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


def _store_target(settings: Any, data_dir: Path) -> tuple[str, str]:
    """(broker, account) of the store to read: configured, else the only one on disk."""
    from hydra_engine.engine import SIM_DEFAULT_ACCOUNT

    kind = settings.broker.kind
    if settings.broker.account:
        return kind, settings.broker.account
    if kind == "sim":
        return kind, SIM_DEFAULT_ACCOUNT
    found = sorted(p.name.split("-", 1)[1] for p in data_dir.glob(f"{kind}-*") if (p / "hydra.db").exists())
    if len(found) == 1:
        return kind, found[0]
    raise ValueError(f"{data_dir}: {'no' if not found else 'several'} {kind} stores ({', '.join(found) or 'none'}); "
                     "name the account with --set broker.account=DU...")


async def fill_report(args: argparse.Namespace) -> int:
    """Fills (newest first) and, with ``--reconcile``, the reconciliation. 0 ok, 2 no store / bad input."""
    from hydra_engine.config import ConfigError
    from hydra_engine.execution.fill_journal import FillJournal
    from hydra_engine.execution.reconciler import SlippageReconciler
    from hydra_engine.store.database import Store, StoreError
    from hydra_tui.headless import configure_logging, settings_from_args

    configure_logging("WARNING", None)  # stdout carries the report only
    try:
        settings = settings_from_args(args)
        data_dir = settings.data_dir(getattr(args, "data_dir", None))
        kind, account = _store_target(settings, data_dir)
        since = None
        if getattr(args, "since", None):
            try:
                since = dt.datetime.fromisoformat(args.since)
            except ValueError:
                raise ValueError(f"--since {args.since!r}: expected an ISO date such as 2026-01-31") from None
            since = since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
        limit = getattr(args, "limit", 20)
        if limit is not None and limit < 1:
            raise ValueError(f"--limit {limit}: must be 1 or more")
        store = await Store.open(data_dir, kind, account, readonly=True, lock=False)
    except (ConfigError, ValueError, StoreError) as exc:
        sys.stderr.write(f"hydra-tui fill-report: {exc}\n")
        return 2
    try:
        fills = await FillJournal(store.conn).fills(getattr(args, "symbol", None), since, limit)
        out = [f"Fills in {store.directory} ({len(fills)} shown, newest first)", fills_table(fills)]
        if getattr(args, "reconcile", False):
            rep = await SlippageReconciler(store.conn).reconcile(getattr(args, "symbol", None))
            out += ["", reconciliation_text(rep)]
        sys.stdout.write("\n".join(out) + "\n")
    finally:
        await store.close()
    return 0


# ---------------------------------------------------------------------------------------------- replay


async def replay(args: argparse.Namespace) -> int:
    """Lock-step ``--days N`` on the embedded exchange, then a report. 0 ok, 1 failure, 2 bad input."""
    from hydra_engine.config import ConfigError
    from hydra_engine.engine import Engine
    from hydra_tui.headless import configure_logging, settings_from_args

    days = getattr(args, "days", 20)
    if days is None or days < 1:
        sys.stderr.write(f"hydra-tui replay: --days {days}: must be 1 or more\n")
        return 2
    if getattr(args, "broker", None) not in (None, "sim"):
        sys.stderr.write("hydra-tui replay: replay runs on the embedded exchange only (--broker sim)\n")
        return 2
    try:
        settings = settings_from_args(args)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"hydra-tui replay: {exc}\n")
        return 2
    tmp = None
    if getattr(args, "keep_store", False):
        from hydra_engine.paths import DataDirError, check_data_dir

        data_dir = settings.data_dir(getattr(args, "data_dir", None))
        try:
            check_data_dir(data_dir)
        except DataDirError as exc:
            sys.stderr.write(f"hydra-tui replay: {exc}\n")
            return 2
    else:
        tmp = tempfile.TemporaryDirectory(prefix="hydra-replay-")
        data_dir = Path(tmp.name)
    fh = configure_logging("WARNING", data_dir / "replay.log")
    try:
        engine = Engine(settings, data_dir=data_dir, lockstep=True, seed=getattr(args, "seed", None))
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"hydra-tui replay: {exc}\n")
        if fh is not None:
            fh.close()
        if tmp is not None:
            tmp.cleanup()
        return 2
    try:
        await engine.start()
        await engine.run_days(days)
        await engine.runner.wait_executions(0)
        text = await replay_report(engine, days)
    except Exception as exc:  # noqa: BLE001
        from hydra_engine.engine_checks import is_refusal

        if is_refusal(exc):  # bad input or state found before trading (a locked store...): 2
            sys.stderr.write(f"hydra-tui replay: {exc}\n")
            return 2
        sys.stderr.write(f"hydra-tui replay: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        await engine.stop()
        if fh is not None:
            fh.close()
        if tmp is not None:
            tmp.cleanup()
    sys.stdout.write(text)
    return 0


async def replay_report(engine: Any, days: int) -> str:
    """Days, cycles, orders, fills, P&L, drawdown, agent decisions and the reconciliation."""
    store = engine.store
    cycles = await store.cycles.recent(limit=100_000)
    orders = await store.orders.recent(limit=100_000)
    fills = await engine.fill_journal.fills()
    marks = await store.equity.marks()
    by_status: dict[str, int] = {}
    for c in cycles:
        by_status[c.status.value] = by_status.get(c.status.value, 0) + 1
    o_status: dict[str, int] = {}
    for o in orders:
        o_status[o.status.value] = o_status.get(o.status.value, 0) + 1
    peak, max_dd = -math.inf, 0.0
    for m in marks:
        peak = max(peak, m.net_liquidation)
        if peak > 0:
            max_dd = max(max_dd, (peak - m.net_liquidation) / peak)
    snap = await engine.broker.get_account_summary()
    start = marks[0].net_liquidation if marks else snap.net_liquidation
    decisions = await engine.agent.journal.query(entry_type="decision", limit=1000)
    diagnoses = await engine.agent.journal.query(entry_type="diagnosis", limit=1000)
    rep = await engine.run_reconciliation()
    commissions = sum(f.commission or 0.0 for f in fills)
    lines = [
        f"HYDRA replay: {days} trading day(s) on the embedded exchange "
        f"({marks[0].trading_date if marks else '-'} .. {marks[-1].trading_date if marks else '-'})",
        f"  cycles        {len(cycles)} ({', '.join(f'{k} {v}' for k, v in sorted(by_status.items())) or 'none'})",
        f"  orders        {len(orders)} ({', '.join(f'{k} {v}' for k, v in sorted(o_status.items())) or 'none'})",
        f"  fills         {len(fills)} ({sum(f.qty for f in fills):g} contracts, commission {commissions:,.2f})",
        f"  P&L           {snap.net_liquidation - start:+,.2f} (net liquidation {snap.net_liquidation:,.2f})",
        f"  max drawdown  {max_dd * 100:.2f}% of peak (closing marks)",
        f"  agent         {len(diagnoses)} diagnosis(es), {len(decisions)} decision(s); phase {engine.agent.phase.value}",
        f"  positions     {({p.local_symbol: p.quantity for p in await engine.broker.get_positions()}) or 'flat'}",
        "",
        reconciliation_text(rep),
        "",
    ]
    if fills:
        lines += ["Last fills:", fills_table(fills[:10]), ""]
    return "\n".join(lines)
