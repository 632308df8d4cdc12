"""The registry on the real Store (all migrations, its write gate and clock), as the engine wires it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from model_testdata import synthetic_bars

from hydra_engine.model.baseline import BaselineModel, ModelSpec
from hydra_engine.model.champion import ChampionProvider
from hydra_engine.model.features import build_features, make_labels
from hydra_engine.model.registry import ModelRegistry
from hydra_engine.store.database import Store


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, list[BaselineModel]]:
    b = synthetic_bars(200, edge=0.5, seed=9)
    f, y = build_features(b), make_labels(b)
    return f, [BaselineModel(ModelSpec("logistic", {"C": c}, train_window_days=120)).fit(f, y) for c in (0.05, 5.0)]


async def test_registry_with_store_gate(tmp_path: Path, fitted) -> None:
    f, models = fitted
    store = await Store.open_path(tmp_path / "hydra.db", "DU1234567", broker="sim")
    try:
        reg = ModelRegistry(store.conn, tmp_path / "models", clock=store.clock, write_gate=store.tx)
        v1 = await reg.register(models[0])
        v2 = await reg.register(models[1], parent=v1, mutation="C x100")
        await reg.promote(v1)
        await store.conn.execute(
            f"CREATE TRIGGER refuse BEFORE UPDATE OF status ON models WHEN NEW.status = 'champion' "
            f"AND NEW.version = '{v2}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
        await store.conn.commit()
        with pytest.raises(sqlite3.DatabaseError, match="injected failure"):
            await reg.promote(v2)
        assert (await reg.get(v1)).status == "champion" and (await reg.get(v1)).superseded_by is None
        await store.conn.execute("DROP TRIGGER refuse")
        await store.conn.commit()
        await reg.promote(v2)
        provider = ChampionProvider(reg)
        assert await provider.predict_proba(f) == pytest.approx(float(models[1].predict_proba(f.iloc[[-1]])[0]))
        assert await reg.rollback("test") == v1
        assert (await reg.get(v2)).superseded_by == v1
    finally:
        await store.close()
    # Everything committed: a fresh open of the same store sees the rolled-back state.
    store = await Store.open_path(tmp_path / "hydra.db", "DU1234567", broker="sim")
    try:
        reg = ModelRegistry(store.conn, tmp_path / "models", write_gate=store.tx)
        assert await reg.champion_version() == v1
        assert [e.kind for e in await reg.events()][-2:] == ["promote", "rollback"]
    finally:
        await store.close()
