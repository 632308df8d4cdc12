"""Retention on a real store: the registry deletes old versions' files but never a market's champion,
its predecessor or a candidate (rows stay, a rollback still works); housekeeping deletes old
experiment folders (not a running one), rotated logs, backups and crash leftovers, journals what it
did, runs once per trading date after its last cycle, and VACUUMs when due."""

from __future__ import annotations

import asyncio

import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hydra_engine.agent.journal import ExperimentJournal
from hydra_engine.clock import ManualClock
from hydra_engine.markets import CATALOG
from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.features import build_features, make_labels
from hydra_engine.model.registry import ModelRegistry
from hydra_engine.operations.maintenance import LAST_VACUUM_KEY, Maintenance
from hydra_engine.operations.settings import RetentionSettings
from hydra_engine.store.cycles import CycleStatus
from hydra_engine.store.ops_journal import OpsKind

T0 = dt.datetime(2026, 1, 5, 21, 0, tzinfo=dt.timezone.utc)
DAY = 86_400.0


def bars(n: int = 300, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.cumprod(1 + 0.01 * rng.standard_normal(n))
    open_ = close * (1 + rng.normal(0, 0.003, n))
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.004, "low": np.minimum(open_, close) * 0.996,
                         "close": close, "volume": rng.integers(1000, 5000, n)},
                        index=pd.bdate_range("2020-01-01", periods=n).rename("date"))


def fitted(c: float) -> BaselineModel:
    b = bars()
    return BaselineModel(ModelSpec("logistic", {"C": c}, train_window_days=200)).fit(build_features(b), make_labels(b))


def age(path: Path, days: float) -> None:
    """Make ``path`` (and everything in it) ``days`` old."""
    t = time.time() - days * DAY
    for p in [*(path.rglob("*") if path.is_dir() else []), path]:
        os.utime(p, (t, t))


async def test_prune_keeps_champion_predecessor_candidates_and_the_newest(store) -> None:
    clock = ManualClock(T0)
    registry = ModelRegistry(store.conn, store.directory / "models", clock, write_gate=store.tx)
    cl, zo = registry.for_market("CL"), registry.for_market("ZO")
    v = {}
    v[1] = await cl.register(fitted(0.01), status="champion")
    clock.advance(dt.timedelta(days=10))
    v[2] = await cl.register(fitted(0.02))
    await cl.promote(v[2])
    clock.advance(dt.timedelta(days=10))
    v[3] = await cl.register(fitted(0.03))
    await cl.promote(v[3])  # champion v3, predecessor v2, v1 archived
    v[4] = await cl.register(fitted(0.04))
    await cl.reject(v[4], "failed the gate")
    v[5] = await cl.register(fitted(0.05))  # a candidate (may await approval)
    clock.advance(dt.timedelta(days=40))
    v[6] = await cl.register(fitted(0.06), status="archived")
    z1 = await zo.register(fitted(0.07), status="champion")
    z2 = await zo.register(fitted(0.08), status="archived")
    pruned = await cl.prune_files(keep=1, older_than=clock.now() - dt.timedelta(days=30))
    assert sorted(ver for ver, _ in pruned) == sorted([v[1], v[4]]) and all(size > 0 for _, size in pruned)
    models = store.directory / "models"
    assert {p.name for p in models.iterdir() if p.is_dir()} == {v[2], v[3], v[5], v[6], z1, z2}
    assert {r.version for r in await cl.history()} == {v[i] for i in range(1, 7)}  # rows stay
    assert await cl.prune_files(keep=1, older_than=clock.now()) == []  # nothing else qualifies
    assert await cl.rollback("test") == v[2]  # the predecessor's files were kept


async def test_housekeeping_deletes_old_files_journals_and_vacuums(store) -> None:
    clock = ManualClock(T0)
    registry = ModelRegistry(store.conn, store.directory / "models", clock, write_gate=store.tx)
    await registry.for_market("CL").register(fitted(0.01), status="champion")
    exp = store.directory / "experiments" / "CL"
    cycles = []
    for i in range(4):
        d = exp / f"2026-01-0{i + 1}-abc{i}" / f"exp-{i}"
        d.mkdir(parents=True)
        (d / "experiment.log").write_text("x" * 1000)
        cycles.append(d.parent)
    running = cycles[0]
    await ExperimentJournal(store.conn, store.tx, market="CL").start_experiment(
        "exp-0", "h", diagnosis="drift", config_diff={}, trading_date=None, cycle_id=None,
        log_path=str(running / "exp-0" / "experiment.log"))
    for i, c in enumerate(cycles):
        age(c, 40 - i)
    log_file = store.directory / "hydra.log"
    log_file.write_text("live")
    rotated = [store.directory / f"hydra.log.{i}" for i in range(1, 5)]
    for i, p in enumerate(rotated):
        p.write_text("old log")
        age(p, 40 + i)
    backups = [store.directory / f"hydra.db.bak-v{i}-2025" for i in range(1, 4)]
    for i, p in enumerate(backups):
        p.write_bytes(b"backup")
        age(p, 200 + i)
    old_orphan = store.directory / "models" / ".tmp-crashed"
    old_orphan.mkdir()
    (old_orphan / "model.pkl").write_bytes(b"half")
    age(old_orphan, 3)
    fresh_orphan = store.directory / "models" / "v0099-inflight"
    fresh_orphan.mkdir()
    settings = RetentionSettings(experiments_keep=1, experiments_max_age_days=14, logs_keep=2, logs_max_age_days=30,
                                 backups_keep=1, backups_max_age_days=90, vacuum_every_days=7)
    m = Maintenance(store, registry, settings, [CATALOG["CL"]], log_file=log_file, idle=lambda: True, clock=clock)
    # bulk to reclaim: rows written then deleted leave free pages only VACUUM gives back
    async with store.tx.transaction() as conn:
        await conn.executemany("INSERT INTO ops_journal (at, kind, message, detail) VALUES ('x', 'NOTE', ?, '{}')",
                               [("y" * 2000,) for _ in range(2000)])
    async with store.tx.transaction() as conn:
        await conn.execute("DELETE FROM ops_journal WHERE message LIKE 'yyyy%'")
    await store.kv.set_raw(LAST_VACUUM_KEY, "2025-12-20")
    report = await m.run(dt.date(2026, 1, 5))
    by = {s.what: s for s in report.steps}
    assert sorted(Path(p).name for p in by["experiments"].paths) == sorted(c.name for c in cycles[1:3])
    assert running.exists() and cycles[3].exists()  # in use / the newest
    assert sorted(Path(p).name for p in by["logs"].paths) == ["hydra.log.3", "hydra.log.4"] and log_file.exists()
    assert sorted(Path(p).name for p in by["backups"].paths) == ["hydra.db.bak-v2-2025", "hydra.db.bak-v3-2025"]
    assert by["model_orphans"].paths == (str(old_orphan),) and fresh_orphan.exists()
    assert report.vacuum is not None and report.vacuum["bytes_after"] < report.vacuum["bytes_before"]
    entries = await store.ops.recent(10, kind=OpsKind.RETENTION)
    assert {e.command for e in entries} == {"retention", "vacuum"}
    summary = next(e for e in entries if e.command == "retention")
    assert summary.detail["experiments"]["deleted"] == 2 and summary.detail["backups"]["deleted"] == 2
    assert "2 experiments" in summary.message and "freed" in summary.message
    assert await store.kv.get_raw(LAST_VACUUM_KEY) == "2026-01-05"


async def test_runs_once_per_date_after_the_last_market_finished(store) -> None:
    clock = ManualClock(T0)
    registry = ModelRegistry(store.conn, store.directory / "models", clock, write_gate=store.tx)
    m = Maintenance(store, registry, RetentionSettings(), [CATALOG["CL"], CATALOG["ZO"]], log_file=None,
                    idle=lambda: True, clock=clock)
    day = dt.date(2026, 1, 5)
    await store.cycles.claim("CL", day, "schedule")
    await store.cycles.finish("CL", day, {"status": "FINISHED"}, status=CycleStatus.FINISHED)
    assert await m.after_cycle(day) is None  # ZO has not decided yet
    await store.cycles.claim("ZO", day, "schedule")
    assert await m.after_cycle(day) is None  # ZO is running
    await store.cycles.finish("ZO", day, {"status": "SKIPPED"}, status=CycleStatus.SKIPPED)
    report = await m.after_cycle(day)
    assert report is not None and report.trading_date == day and report.vacuum is None
    assert await m.after_cycle(day) is None  # once per date
    assert await store.kv.get_raw(LAST_VACUUM_KEY) == "2026-01-05"  # the first run starts the vacuum count


async def test_vacuum_runs_while_a_reader_is_mid_query_on_the_stores_connection(store, monkeypatch) -> None:
    """SQLite refuses VACUUM on a connection with a statement in progress: a pane's or a command's
    read must not make the scheduled VACUUM fail (it did, day after day, in long lock-step runs)."""
    import threading

    from hydra_engine.operations import maintenance

    clock = ManualClock(T0)
    registry = ModelRegistry(store.conn, store.directory / "models", clock, write_gate=store.tx)
    m = Maintenance(store, registry, RetentionSettings(vacuum_every_days=1), [CATALOG["CL"]], log_file=None,
                    idle=lambda: True, clock=clock)
    async with store.tx.transaction() as conn:
        await conn.executemany("INSERT INTO ops_journal (at, kind, message, detail) VALUES ('x', 'NOTE', ?, '{}')",
                               [("y" * 2000,) for _ in range(1000)])
    async with store.tx.transaction() as conn:
        await conn.execute("DELETE FROM ops_journal WHERE message LIKE 'yyyy%' AND rowid % 2 = 0")
    vacuumed, reader_done = threading.Event(), threading.Event()
    real = maintenance._vacuum_file

    def vacuum_then_wait(path: Path) -> None:  # the real VACUUM, then hold until the reader is done
        real(path)
        vacuumed.set()
        reader_done.wait(10)

    monkeypatch.setattr(maintenance, "_vacuum_file", vacuum_then_wait)
    reader = await store.conn.execute("SELECT message FROM ops_journal")
    assert await reader.fetchone() is not None  # a statement in progress on the shared connection
    task = asyncio.create_task(m.vacuum(dt.date(2026, 1, 5)))
    assert await asyncio.to_thread(vacuumed.wait, 10), "the VACUUM did not run"
    assert await reader.fetchone() is not None  # the reader goes on from its snapshot meanwhile
    await reader.close()
    reader_done.set()
    result = await task
    assert result is not None and await store.kv.get_raw(LAST_VACUUM_KEY) == "2026-01-05"
    # the reader kept the WAL from being truncated meanwhile; the next checkpoint gives the space back
    async with store.tx.exclusive() as conn:
        await (await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")).close()
    assert store.path.stat().st_size < result["bytes_before"] * 0.75


async def test_finished_cycles_faster_than_housekeeping_fold_into_one_worker(store) -> None:
    """Lock-step plays days faster than a run whose VACUUM waits for an idle moment: the events fold
    into one worker looking at the newest date (a task per event piled up without bound)."""
    from hydra_engine.events import CycleFinished
    from hydra_engine.operations.maintenance import LAST_RUN_KEY

    clock = ManualClock(T0)
    registry = ModelRegistry(store.conn, store.directory / "models", clock, write_gate=store.tx)
    busy = {"cycle": True}
    m = Maintenance(store, registry, RetentionSettings(vacuum_every_days=1), [CATALOG["CL"]], log_file=None,
                    idle=lambda: not busy["cycle"], clock=clock, idle_wait_s=0.3)
    days = [d for d in (dt.date(2026, 1, 5) + dt.timedelta(days=i) for i in range(60)) if d.weekday() < 5]
    await store.kv.set_raw(LAST_VACUUM_KEY, "2025-12-01")  # every run wants a VACUUM, which waits for idle
    for day in days:
        await store.cycles.claim("CL", day, "schedule")
        await store.cycles.finish("CL", day, {"status": "FINISHED"}, status=CycleStatus.FINISHED)
        m.on_event(CycleFinished(at=T0, market="CL", trading_date=day, outcome="FINISHED"))
        live = [t for t in asyncio.all_tasks() if t.get_name().startswith("retention")]
        assert len(live) <= 1, [t.get_name() for t in live]
        await asyncio.sleep(0.01)
    busy["cycle"] = False
    deadline = asyncio.get_running_loop().time() + 30
    while await store.kv.get_raw(LAST_RUN_KEY) != days[-1].isoformat():
        assert asyncio.get_running_loop().time() < deadline, await store.kv.get_raw(LAST_RUN_KEY)
        await asyncio.sleep(0.05)
    assert 1 <= len(m.reports) < len(days)  # the newest date ran; the days played meanwhile folded into it
    await m.stop()
