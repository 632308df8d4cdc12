"""``fill-report --reconcile`` text: one panel per market and a pooled line in bps only."""

from __future__ import annotations

import asyncio
import datetime as dt

from hydra_engine.execution.fill_journal import FillJournal, FillRecord
from hydra_engine.execution.reconciler import CalibrationThresholds, SlippageReconciler
from hydra_engine.store.database import open_migrated
from hydra_tui.commands import reconciliation_text

T0 = dt.datetime(2026, 11, 23, 15, tzinfo=dt.UTC)


async def test_one_panel_per_market_and_a_pooled_bps_line(tmp_path) -> None:
    db = await open_migrated(tmp_path / "t.db")
    try:
        j = FillJournal(db, group_commit=True)
        recs = []
        for i in range(80):  # CL (dollars) costs 7.4x its prediction, ZO (cents) 0.55x
            sym, mid, pred, ratio = ("CL", 70.0, 0.01, 7.4) if i % 2 else ("ZO", 350.0, 0.45, 0.55)
            recs.append(FillRecord(exec_id=f"x{i}", fill_time=T0 + dt.timedelta(minutes=i), symbol=sym,
                                   contract_month="202703", direction="BUY", qty=1,
                                   fill_price=mid + pred * ratio * (1 + 0.01 * (i % 7)), arrival_mid=mid,
                                   predicted_slippage=pred * (1 + 0.02 * (i % 5)), data_type="live"))
        await asyncio.gather(*(j.log_fill(r) for r in recs))
        rec = SlippageReconciler(db, CalibrationThresholds(min_fills=30))
        text = reconciliation_text(await rec.reconcile())
        lines = text.splitlines()
        cl = next(x for x in lines if x.startswith("Market CL:"))
        zo = next(x for x in lines if x.startswith("Market ZO:"))
        assert "underestimates cost" in cl and "overestimates cost" in zo
        assert text.count("pessimism multiplier") >= 3  # a row in each panel and the pooled line
        pooled = [x for x in lines if x.startswith("POOLED")]
        assert len(pooled) == 1 and "bps only" in pooled[0] and "Price units" not in pooled[0]
        assert lines[0].startswith("Reconciliation, per market:") and "underestimates cost" in lines[0]
        one = reconciliation_text(await rec.reconcile("CL"))
        assert one.startswith("Reconciliation CL:") and "POOLED" not in one and "Price units" in one
    finally:
        await db.close()
