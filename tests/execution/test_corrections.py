"""IB's execution corrections (a new execId for a fill already reported) are never a second fill:
the same fill is journalled once with a note; a correction that changes a journalled fill raises the
conflicting-fill alarm and holds the market's trading."""

from __future__ import annotations

import datetime as dt

from hydra_engine.broker.records import ExecutionReport
from hydra_engine.broker.sync import execution_base
from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_engine.execution.corrections import CorrectionJournal
from hydra_engine.sim.audit_log import audit_path, read_audit


def test_the_base_of_an_exec_id_drops_its_last_group() -> None:
    assert execution_base("6ca43863.00000005.01.01") == "6ca43863.00000005.01"
    assert execution_base("6ca43863.00000005.01.02") == "6ca43863.00000005.01"
    assert execution_base("plain") == "plain"


async def test_a_corrected_execution_is_journalled_once(tmp_path, sim_universe) -> None:
    settings = load_settings(None, {"sim.faults": "correct@fill=1", "execution.long_threshold": 0.5,
                                    "execution.short_threshold": 0.5})
    eng = Engine(settings, data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        await eng.run_days(2)
        await eng.runner.wait_executions(0)
        booked = [r for r in read_audit(audit_path(eng.exchange.state_path)) if r["type"] == "execution"]
        bases = [execution_base(r["exec_id"]) for r in booked]
        assert len(bases) > len(set(bases)), "the exchange should have sent a correction"
        fills = await eng.fill_journal.fills(limit=100)
        assert sorted(execution_base(f.exec_id) for f in fills) == sorted(set(bases))  # once per fill
        notes = [e for e in await eng.store.ops.recent(100) if "corrected as" in e.message]
        assert len(notes) == 1 and "the same fill" in notes[0].message
        assert not [e for e in await eng.store.ops.recent(100, kind="POSITION_CHANGE")]
        assert not await eng.store.fill_conflicts.open_conflicts()
    finally:
        await eng.stop()


async def test_a_correction_that_changes_a_fill_holds_the_market(tmp_path, sim_universe) -> None:
    eng = Engine(load_settings(None, {"markets": "ZO"}), data_dir=tmp_path, universe=sim_universe, agent=False)
    await eng.start()
    try:
        at = dt.datetime(2018, 1, 3, 15, 0, tzinfo=dt.UTC)
        original = ExecutionReport(exec_id="ab.01.01", order_id=5, perm_id=9, order_ref="HY-ZO-1", con_id=77,
                                   symbol="ZO", local_symbol="ZOH8", contract_month="201803", side="BUY", qty=1.0,
                                   price=250.25, time=at, commission=2.25, live=True)
        changed = ExecutionReport(exec_id="ab.01.02", order_id=5, perm_id=9, order_ref="HY-ZO-1", con_id=77,
                                  symbol="ZO", local_symbol="ZOH8", contract_month="201803", side="BUY", qty=1.0,
                                  price=250.50, time=at, commission=2.25, live=True)
        journal = CorrectionJournal(eng.store)
        journal.on_correction(original, changed)
        await journal.drain()
        [alarm] = await eng.store.fill_conflicts.open_conflicts("ZO")
        assert alarm.exec_id == "ab.01.02" and "price" in alarm.differences
        assert await eng.store.fill_conflicts.blocked("ZO")
    finally:
        await eng.stop()
