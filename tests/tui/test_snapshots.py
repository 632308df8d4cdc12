"""Snapshots (pytest-textual-snapshot) of the main screen, reconciliation, journal, help and the live
modal. Every figure is fixed: a frozen clock, seeded fills, log lines with fixed times, no engine
and no wall-clock text, cursor blink off, so a snapshot changes only when the screen does.

Update after an intended change: ``pytest tests/tui/test_snapshots.py --snapshot-update``, then
look at the SVGs under ``__snapshots__`` before committing them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
from textual.app import App
from textual.widgets import Input

from hydra_engine.config import load_settings
from hydra_engine.execution.fill_journal import FillJournal, FillRecord
from hydra_engine.execution.reconciler import CalibrationThresholds, SlippageReconciler
from hydra_engine.store.database import open_migrated
from hydra_tui.app import HydraApp
from hydra_tui.logging_setup import LogLine, LogRing
from hydra_tui.screens.help import HelpScreen
from hydra_tui.screens.journal import JournalRow, JournalScreen
from hydra_tui.screens.live_modal import LiveConfirmScreen
from hydra_tui.screens.reconciliation import ReconciliationScreen, scatter_points
from hydra_tui.widgets import view as v

NOW = dt.datetime(2018, 3, 15, 21, 15, tzinfo=dt.timezone.utc)
WIDE, NARROW = (160, 50), (80, 24)


def frozen_view() -> v.View:
    """A main screen's worth of figures: two markets, a position each, a working order, fills, an
    agent with an alarm, a running experiment and a candidate awaiting approval."""
    day = dt.timedelta(days=1)
    gate = v.gate_text({"passed": True, "windows_won": 4, "n_windows": 5, "weighted_win": 0.71,
                        "dm": {"p_value": 0.031}, "dsr": {"dsr": 0.97, "n_trials": 6}, "reasons": []})
    cl = v.MarketAgentView(
        "CL", "v0003-5be1c0aa", "logistic", "AWAITING_APPROVAL", "supervised",
        (v.DetectorReading("ret_1/cusum_mean", 9.41, 8.73), v.DetectorReading("ret_1/ks_p", 0.0002, 0.0005, True),
         v.DetectorReading("vol_20/psi", 0.12, 0.37), v.DetectorReading("perf:log_loss", 3.1, 6.0)),
        "2018-03-14 relation flipped (ret_1, ret_5)", "concept_drift",
        "features ret_1, ret_5; hit_rate=0.41; log_loss_excess=0.062",
        (v.ExperimentRow("exp-1", "retrain_recent:{\"train_window_days\": 250}", "OK", 1.0, 41.0, "awaiting_approval"),
         v.ExperimentRow("exp-2", "change_family:{\"family\": \"hist_gb\"}", "RUNNING", 0.35, 21.0)),
        v.PendingApproval("CL", "v0004-9c3e1d27", "retrain_recent:{\"train_window_days\": 250}", "v0003-5be1c0aa",
                          "2018-03-14", gate),
        "2018-02-20 v0003-5be1c0aa promoted (was v0001-12a0fef2): agent: refit")
    zo = v.MarketAgentView("ZO", "v0002-2f62355d", "logistic", "IDLE", "supervised",
                           (v.DetectorReading("ret_1/cusum_mean", 2.2, 8.73),), last_change="2018-01-02 registered",
                           derisked=0.0)
    return v.View(
        mode="SIM", connection="connected", connected=True, last_message_age_s=0.0, trading_state="ACTIVE",
        agent_phase="AWAITING_APPROVAL", now=NOW, clock_kind="sim",
        clocks=(v.MarketClock("CL", NOW + dt.timedelta(hours=24)), v.MarketClock("ZO", NOW + dt.timedelta(hours=21, minutes=45))),
        account="DU1234567", net_liquidation=1_004_602.5, cash=1_003_577.5, daily_pnl=1_020.5, drawdown=0.0042,
        equity=tuple(1_000_000 + 900 * np.sin(i / 4.0) + 60 * i for i in range(60)),
        positions=(v.PositionRow("CLK8", "201804", 1, 60.98, 61.57, 590.0, 18),
                   v.PositionRow("ZOK8", "201805", -2, 380.2, 374.5, 1_140.0, 24)),
        orders=(v.OrderRow("HY-CL-20180315-1", "BUY", "CLK8", 61.1, 0, 1, 2, 95.0, "Submitted"),),
        fills=tuple(v.FillRow(f"x{i}", NOW - i * day, "CL" if i % 2 else "ZO", "BUY" if i % 3 else "SELL", 1 + i % 2,
                              60.0 + i / 10 if i % 2 else 380.0 + i, 60.02 + i / 10 if i % 2 else 380.25 + i,
                              0.011 if i % 2 else 0.42, 0.02 if i % 2 else 0.25, 30_000.0 * (1 + i % 4))
                    for i in range(8)),
        agent=v.AgentView(True, (cl, zo)), cycles_run=36)


def frozen_log() -> LogRing:
    ring = LogRing()
    lines = [("info", "runner.cycle_started market=CL trading_date=2018-03-15"),
             ("info", "agent.journal entry_type=diagnosis outcome=concept_drift market=CL"),
             ("warning", "agent.gate candidate v0004-9c3e1d27 awaits approval market=CL"),
             ("info", "runner.cycle_finished market=CL status=FINISHED target=1")]
    for i, (level, text) in enumerate(lines):
        ring.lines.append(LogLine(NOW + dt.timedelta(seconds=i), level, text))
        ring.seq += 1
    return ring


def main_app() -> HydraApp:
    return HydraApp(load_settings(None, {}), fixed_view=frozen_view(), log_ring=frozen_log(), day_seconds=0.5)


class Host(App[None]):
    """Shows one screen filled from fixed data (no engine)."""

    def __init__(self, make_screen: Any) -> None:
        super().__init__()
        self.make_screen = make_screen

    def on_mount(self) -> None:
        self.push_screen(self.make_screen())


async def seeded_report() -> tuple[Any, list[Any]]:
    """The real reconciler over 80 seeded fills in a temporary store: CL costs more than predicted."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        db = await open_migrated(Path(d) / "t.db")
        try:
            j = FillJournal(db, group_commit=True)
            rng = np.random.default_rng(7)
            for i in range(80):
                sym, mid, pred, ratio = ("CL", 62.0, 0.01, 2.2) if i % 2 else ("ZO", 380.0, 0.42, 0.9)
                noise = float(rng.normal(0, 0.2))
                await j.log_fill(FillRecord(
                    exec_id=f"x{i}", fill_time=NOW - dt.timedelta(hours=i), symbol=sym, contract_month="201805",
                    direction="BUY", qty=1, fill_price=round(mid + pred * ratio * (1 + noise), 6), arrival_mid=mid,
                    predicted_slippage=pred * (1 + 0.5 * (i % 5) / 4), data_type="live"))
            report = await SlippageReconciler(db, CalibrationThresholds(min_fills=30)).reconcile()
            fills = await j.fills()
        finally:
            await db.close()
    return report, scatter_points(fills)


def journal_rows() -> list[JournalRow]:
    rows = [("a9", "2018-03-15T21:20:04", "agent", "decision", "awaiting_approval", "CL",
             "v0004-9c3e1d27 passed the gate and awaits operator approval"),
            ("a8", "2018-03-15T21:19:30", "agent", "experiment", "awaiting_approval", "CL",
             "retrain_recent ok in 41.0 s: selected"),
            ("o5", "2018-03-15T21:15:00", "operator", "command", "pause", "", "paused: operator (TUI)"),
            ("a7", "2018-03-15T21:18:02", "agent", "diagnosis", "concept_drift", "CL", "relation flipped (ret_1, ret_5)"),
            ("a6", "2018-03-14T21:18:02", "agent", "observation", "alarm", "CL", "240 feature rows observed; 2 alarms"),
            ("o4", "2018-03-14T21:15:00", "operator", "note", "", "", "engine started (SIM, account DU1234567)")]
    return sorted((JournalRow(*r) for r in rows), key=lambda r: (r.at, r.key), reverse=True)


def no_blink(pilot: Any) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False


def test_main_screen_wide(snap_compare: Any) -> None:
    assert snap_compare(main_app(), terminal_size=WIDE)


def test_main_screen_narrow_agent_tab(snap_compare: Any) -> None:
    assert snap_compare(main_app(), press=["4"], terminal_size=NARROW)


def test_reconciliation_screen(snap_compare: Any) -> None:
    report, points = asyncio.run(seeded_report())

    async def fill(pilot: Any) -> None:
        screen = pilot.app.screen
        await screen.loaded.wait()  # its own load said "no engine running" first
        screen.show(report, points)
        await pilot.pause()

    assert snap_compare(Host(lambda: ReconciliationScreen(None)), terminal_size=WIDE, run_before=fill)


def test_journal_screen(snap_compare: Any) -> None:
    async def fill(pilot: Any) -> None:
        screen = pilot.app.screen
        await screen.loaded.wait()
        screen.show(journal_rows())
        await pilot.pause()

    assert snap_compare(Host(lambda: JournalScreen(None)), terminal_size=WIDE, run_before=fill)


def test_help_screen(snap_compare: Any) -> None:
    bindings = main_app().binding_list()
    assert snap_compare(Host(lambda: HelpScreen(bindings)), terminal_size=WIDE)


def test_live_modal(snap_compare: Any) -> None:
    async def typed(pilot: Any) -> None:
        no_blink(pilot)
        await pilot.pause()

    assert snap_compare(Host(lambda: LiveConfirmScreen("U7654321", 4001)), terminal_size=(100, 30), run_before=typed)
