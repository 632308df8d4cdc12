"""ModelRegistry on a real SQLite file: files before rows, atomic champion switch, rollback, lineage."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import aiosqlite
import numpy as np
import pandas as pd
import pytest
from model_testdata import migration_sql, synthetic_bars

from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.champion import ChampionProvider
from hydra_engine.model.features import FeatureError, build_features, make_labels
from hydra_engine.model.registry import ModelRegistry, RegistryError


@pytest.fixture(scope="module")
def features() -> tuple[pd.DataFrame, pd.Series]:
    b = synthetic_bars(260, edge=0.5, seed=3)
    return build_features(b), make_labels(b)


@pytest.fixture(scope="module")
def models(features) -> list[BaselineModel]:
    f, y = features
    return [BaselineModel(ModelSpec("logistic", {"C": c}, train_window_days=150)).fit(f, y) for c in (0.01, 0.1, 1.0, 10.0)]


async def champion_count(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT COUNT(*) FROM models WHERE status = 'champion'") as cur:
        return (await cur.fetchone())[0]


async def test_register_writes_files_then_row(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    v = await reg.register(models[0], {"sharpe": 1.2}, mutation="initial")
    assert v.startswith("v0001-") and v.endswith(models[0].content_hash()[:8])
    rec = await reg.get(v)
    assert rec.status == "candidate" and rec.metrics == {"sharpe": 1.2} and rec.mutation == "initial"
    assert rec.spec["family"] == "logistic" and rec.n_train == 150
    assert (tmp_path / "models" / v / "model.pkl").is_file()
    assert json.loads((tmp_path / "models" / v / "metadata.json").read_text())["content_hash"] == rec.content_hash
    assert await reg.orphan_dirs() == []
    v2 = await reg.register(models[1], parent=v, mutation="C x10")
    assert v2.startswith("v0002-")
    assert [r.version for r in await reg.candidates()] == [v2, v]
    assert await reg.champion() is None


async def test_failed_register_leaves_nothing(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    with pytest.raises(RegistryError, match="parent 'v9999' is not registered"):
        await reg.register(models[0], parent="v9999")
    assert list((tmp_path / "models").iterdir()) == []
    assert await reg.history() == []
    with pytest.raises(RegistryError, match="need a fitted BaselineModel"):
        await reg.register(BaselineModel(ModelSpec("logistic")))


async def test_promote_archives_old_champion(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    v1 = await reg.register(models[0])
    v2 = await reg.register(models[1], parent=v1, mutation="C up")
    await reg.promote(v1, reason="first")
    assert await reg.champion_version() == v1
    await reg.promote(v2, reason="better sharpe")
    old, new = await reg.get(v1), await reg.get(v2)
    assert old.status == "archived" and old.superseded_by == v2 and old.archived_at is not None
    assert new.status == "champion" and new.previous_champion == v1 and new.status_reason == "better sharpe"
    assert await champion_count(conn) == 1
    kinds = [(e.kind, e.version, e.previous) for e in await reg.events()]
    assert kinds == [("register", v1, None), ("register", v2, v1), ("promote", v1, None), ("promote", v2, v1)]
    await reg.promote(v2)  # already champion: no-op
    assert len(await reg.events()) == 4


async def test_switch_is_atomic_when_the_second_write_fails(conn, tmp_path: Path, models, features) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    v1 = await reg.register(models[0])
    v2 = await reg.register(models[1])
    await reg.promote(v1)
    champ_before = await reg.champion()
    # A real failure inside the transaction: the database refuses the second UPDATE.
    await conn.execute(
        f"CREATE TRIGGER refuse BEFORE UPDATE OF status ON models WHEN NEW.status = 'champion' "
        f"AND NEW.version = '{v2}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    await conn.commit()
    with pytest.raises(sqlite3.DatabaseError, match="injected failure"):
        await reg.promote(v2)
    assert not conn.in_transaction
    old = await reg.get(v1)
    assert old.status == "champion" and old.superseded_by is None and old.archived_at is None
    assert (await reg.get(v2)).status == "candidate"
    assert await champion_count(conn) == 1
    assert await reg.champion() is champ_before
    assert [e.kind for e in await reg.events()] == ["register", "register", "promote"]


async def test_schema_forbids_two_champions(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    v1 = await reg.register(models[0])
    v2 = await reg.register(models[1])
    await reg.promote(v1)
    with pytest.raises(sqlite3.IntegrityError):
        await conn.execute("UPDATE models SET status = 'champion' WHERE version = ?", (v2,))
    await conn.rollback()


async def test_rollback_walks_back_through_promotions(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    with pytest.raises(RegistryError, match="no champion to roll back"):
        await reg.rollback()
    v1, v2, v3 = [await reg.register(m) for m in models[:3]]
    await reg.promote(v1)
    with pytest.raises(RegistryError, match=f"champion {v1} has no previous champion"):
        await reg.rollback()
    await reg.promote(v2)
    await reg.promote(v3)
    assert await reg.rollback(reason="drawdown breach") == v2
    gone = await reg.get(v3)
    assert gone.status == "archived" and gone.superseded_by == v2 and "drawdown breach" in gone.status_reason
    assert (await reg.champion()).content_hash() == models[1].content_hash()
    assert await reg.rollback() == v1
    assert await reg.champion_version() == v1
    assert await champion_count(conn) == 1
    assert [e.kind for e in await reg.events() if e.kind == "rollback"] == ["rollback", "rollback"]


async def test_corrupted_files_never_become_champion(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    v1 = await reg.register(models[0])
    v2 = await reg.register(models[1])
    await reg.promote(v1)
    (tmp_path / "models" / v2 / "model.pkl").write_bytes(b"garbage")
    with pytest.raises(RegistryError, match=f"model {v2}: cannot load files"):
        await reg.promote(v2)
    assert await reg.champion_version() == v1


async def test_champion_cache_follows_changes_from_another_connection(conn, tmp_path: Path, models) -> None:
    reg_a = ModelRegistry(conn, tmp_path / "models")
    v1 = await reg_a.register(models[0])
    v2 = await reg_a.register(models[1])
    await reg_a.promote(v1)
    first = await reg_a.champion()
    assert await reg_a.champion() is first  # cached
    other = await aiosqlite.connect(tmp_path / "store.db")
    try:
        reg_b = ModelRegistry(other, tmp_path / "models")  # e.g. `hydra-tui` CLI in another process
        await reg_b.promote(v2)
        reloaded = await reg_a.champion()
        assert reloaded is not first and reloaded.content_hash() == models[1].content_hash()
        await reg_b.rollback()
        assert (await reg_a.champion()).content_hash() == models[0].content_hash()
    finally:
        await other.close()


async def test_concurrent_promotions_leave_one_champion(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    versions = [await reg.register(m) for m in models]
    other = await aiosqlite.connect(tmp_path / "store.db", timeout=10)
    try:
        reg_b = ModelRegistry(other, tmp_path / "models")
        await asyncio.gather(*(r.promote(v) for r, v in zip([reg, reg_b, reg, reg_b], versions, strict=True)))
    finally:
        await other.close()
    assert await champion_count(conn) == 1
    champ = await reg.champion_version()
    archived = [r for r in await reg.history() if r.status == "archived"]
    assert len(archived) == 3 and all(r.superseded_by is not None for r in archived)
    promotes = [e for e in await reg.events() if e.kind == "promote"]
    assert promotes[-1].version == champ
    assert [e.previous for e in promotes[1:]] == [e.version for e in promotes[:-1]]


async def test_reject_archive_lineage_and_history(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    v1 = await reg.register(models[0], {"sharpe": 0.4})
    v2 = await reg.register(models[1], parent=v1, mutation="C x10")
    v3 = await reg.register(models[2], parent=v2, mutation="C x10 again")
    await reg.promote(v1)
    await reg.reject(v3, "failed Diebold-Mariano")
    with pytest.raises(RegistryError, match="was rejected"):
        await reg.promote(v3)
    with pytest.raises(RegistryError, match="is the champion"):
        await reg.archive(v1)
    await reg.archive(v2, "superseded idea")
    assert [r.version for r in await reg.lineage(v3)] == [v3, v2, v1]
    assert [r.mutation for r in await reg.lineage(v3)] == ["C x10 again", "C x10", None]
    assert [r.version for r in await reg.history()] == [v3, v2, v1]
    assert [r.version for r in await reg.history(status="rejected")] == [v3]
    with pytest.raises(RegistryError, match="not registered"):
        await reg.lineage("v0404-deadbeef")


async def test_register_as_champion_and_walk_forward_metrics(conn, tmp_path: Path, models, features) -> None:
    from hydra_engine.model.features import tradable_returns
    from hydra_engine.model.walk_forward import walk_forward_evaluate

    f, y = features
    b = synthetic_bars(260, edge=0.5, seed=3)
    res = walk_forward_evaluate(ModelSpec("logistic", train_window_days=100), f, y, tradable_returns(b),
                                n_splits=2, test_window=40)
    reg = ModelRegistry(conn, tmp_path / "models")
    v = await reg.register(models[0], res, status="champion")
    rec = await reg.get(v)
    assert rec.status == "champion"
    assert rec.metrics["overall"]["n_days"] == 80 and len(rec.metrics["windows"]) == 2


async def test_orphan_directory_is_reported(conn, tmp_path: Path, models) -> None:
    reg = ModelRegistry(conn, tmp_path / "models")
    await reg.register(models[0])
    (tmp_path / "models" / ".tmp-crashed").mkdir()
    assert [p.name for p in await reg.orphan_dirs()] == [".tmp-crashed"]


async def test_champion_provider_follows_promotion_and_rollback(conn, tmp_path: Path, models, features) -> None:
    f, _ = features
    reg = ModelRegistry(conn, tmp_path / "models")
    provider = ChampionProvider(reg)
    assert await provider.predict_proba(f) is None
    v1 = await reg.register(models[0])
    v2 = await reg.register(models[3])
    await reg.promote(v1)
    p1 = await provider.predict_proba(f)
    assert p1 == pytest.approx(float(models[0].predict_proba(f.iloc[[-1]])[0]))
    assert provider.last_signal.version == v1 and provider.last_signal.as_of == str(f.index[-1])
    await reg.promote(v2)
    p2 = await provider.predict_proba(f)
    assert p2 == pytest.approx(float(models[3].predict_proba(f.iloc[[-1]])[0]))
    assert p1 != p2
    assert await provider.predict(f) == int(p2 > 0.5)
    await reg.rollback()
    assert await provider.predict_proba(f) == pytest.approx(p1)
    assert await provider.version() == v1


async def test_champion_provider_rejects_bad_features(conn, tmp_path: Path, models, features) -> None:
    f, _ = features
    reg = ModelRegistry(conn, tmp_path / "models")
    await reg.promote(await reg.register(models[0]))
    provider = ChampionProvider(reg)
    with pytest.raises(FeatureError, match="non-empty feature DataFrame"):
        await provider.predict_proba(f.iloc[:0])
    broken = f.copy()
    broken.iloc[-1, 0] = np.nan
    with pytest.raises(FeatureError, match="feature 'ret_1' is NaN/inf"):
        await provider.predict_proba(broken)


async def test_migration_applies_twice_without_error(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "again.db") as db:
        await db.executescript(migration_sql())
        await db.executescript(migration_sql())
        async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") as cur:
            names = [r[0] for r in await cur.fetchall()]
    assert {"models", "model_events"} <= set(names)
