"""One champion per market: scoped registries on a real SQLite file, and v006 on an old-schema store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest
from model_testdata import synthetic_bars

from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.features import build_features, make_labels
from hydra_engine.model.registry import ModelRegistry, RegistryError
from hydra_engine.store.database import apply_migrations, discover_migrations


def _model(seed: int) -> BaselineModel:
    bars = synthetic_bars(400, seed=seed)
    f, y = build_features(bars), make_labels(bars)
    idx = f.index.intersection(y.index)
    return BaselineModel(ModelSpec("logistic", {"C": 0.5 + seed})).fit(f.loc[idx], y.loc[idx])


async def test_a_promotion_in_one_market_leaves_the_others_champions_untouched(conn, tmp_path: Path) -> None:
    base = ModelRegistry(conn, tmp_path / "models")
    cl, ho = base.for_market("CL"), base.for_market("HO")
    v_cl = await cl.register(_model(1), status="champion")
    v_ho = await ho.register(_model(2), status="champion")
    assert (await cl.champion_version(), await ho.champion_version()) == (v_cl, v_ho)
    v_cl2 = await cl.register(_model(3), parent=v_cl)
    await cl.promote(v_cl2, reason="test")
    assert await cl.champion_version() == v_cl2
    assert await ho.champion_version() == v_ho  # untouched
    assert (await ho.get(v_ho)).status == "champion" and (await cl.get(v_cl)).status == "archived"
    with pytest.raises(RegistryError, match="belongs to market 'CL'"):
        await ho.promote(v_cl)
    assert await cl.rollback("test") == v_cl
    assert await ho.champion_version() == v_ho
    assert [r.version for r in await ho.history()] == [v_ho]
    assert {r.market for r in await cl.history()} == {"CL"}
    assert await base.champion_version() is None  # unscoped: the old schema's rows only
    assert await base.markets() == ["CL", "HO"]


async def test_v006_on_a_store_built_by_the_old_schema_keeps_its_single_champion(tmp_path: Path) -> None:
    old = [m for m in discover_migrations() if m.version <= 5]
    db = tmp_path / "old.db"
    async with aiosqlite.connect(db) as conn:
        assert await apply_migrations(conn, old) == [1, 2, 3, 4, 5]
        await conn.execute(
            "INSERT INTO models (version, family, status, content_hash, path, spec_json, created_at) "
            "VALUES ('v0001-aaaaaaaa', 'logistic', 'champion', 'h', 'v0001-aaaaaaaa', '{}', '2026-01-01')")
        await conn.execute("INSERT INTO agent_journal (at, entry_type, summary) VALUES ('2026-01-01', 'control', 'old')")
        await conn.commit()
        applied = await apply_migrations(conn)
        assert 6 in applied
        reg = ModelRegistry(conn, tmp_path / "models")
        assert await reg.champion_version() == "v0001-aaaaaaaa"  # kept, unassigned ('') until adopted
        async with conn.execute("SELECT market FROM agent_journal") as cur:
            assert [r[0] for r in await cur.fetchall()] == [""]
        await conn.execute("UPDATE models SET market = 'CL' WHERE market = ''")
        await conn.commit()
        assert await reg.for_market("CL").champion_version() == "v0001-aaaaaaaa"
        # one champion per market, enforced by the schema
        with pytest.raises(sqlite3.IntegrityError):
            await conn.execute(
                "INSERT INTO models (version, family, status, content_hash, path, spec_json, created_at, market) "
                "VALUES ('v0002-bbbbbbbb', 'logistic', 'champion', 'h', 'v0002-bbbbbbbb', '{}', '2026-01-02', 'CL')")
        await conn.execute(
            "INSERT INTO models (version, family, status, content_hash, path, spec_json, created_at, market) "
            "VALUES ('v0003-cccccccc', 'logistic', 'champion', 'h', 'v0003-cccccccc', '{}', '2026-01-02', 'HO')")
