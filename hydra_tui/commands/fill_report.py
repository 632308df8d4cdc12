"""``hydra-tui fill-report``: the journalled fills and, with ``--reconcile``, the slippage
reconciliation per market (read-only: it works beside a running engine)."""

from __future__ import annotations

import argparse

from hydra_tui.commands import common
from hydra_tui.commands.store_reader import known_markets, open_readonly, target_from_args


async def main(args: argparse.Namespace) -> int:
    from hydra_engine.execution.fill_journal import FillJournal
    from hydra_engine.execution.reconciler import SlippageReconciler

    common.quiet_logging()
    since = common.parse_since("--since", args.since) if getattr(args, "since", None) else None
    limit = common.positive_limit("--limit", getattr(args, "limit", 20))
    symbol = args.symbol.strip().upper() if getattr(args, "symbol", None) else None
    settings, target = target_from_args(args)
    store = await open_readonly(target)
    try:
        if symbol is not None:
            known = await known_markets(store.conn, settings)
            async with store.conn.execute("SELECT DISTINCT symbol FROM fills") as cur:
                known += [str(r[0]) for r in await cur.fetchall() if r[0] not in known]
            if symbol not in known:
                raise common.CommandError(f"--symbol {args.symbol!r}: unknown market; this store knows {', '.join(known)}")
        fills = await FillJournal(store.conn).fills(symbol, since, limit)
        rep = await SlippageReconciler(store.conn).reconcile(symbol) if getattr(args, "reconcile", False) else None
    finally:
        await store.close()
    if getattr(args, "json", False):
        common.json_out({"store": str(target.directory), "fills": fills, "reconciliation": rep})
        return common.EXIT_OK
    from hydra_tui.commands.report_tables import fills_table, reconciliation_panels

    out = common.console()
    out.print(fills_table(fills, f"Fills in {target.directory} ({len(fills)} shown, newest first)"))
    if rep is not None:
        for part in reconciliation_panels(rep):
            out.print(part)
    return common.EXIT_OK
