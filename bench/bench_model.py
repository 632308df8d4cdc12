"""Model layer figures: feature build, fit/predict per family, walk-forward, registry switch.

Prints timings (single native thread, as the engine runs them). Never fails a build.
Run: .venv/bin/python bench/bench_model.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiosqlite
import numpy as np
import pandas as pd
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra_engine.model.baseline import BaselineModel, ModelSpec  # noqa: E402
from hydra_engine.model.champion import ChampionProvider  # noqa: E402
from hydra_engine.model.features import build_features, make_forward_returns, make_labels  # noqa: E402
from hydra_engine.model.registry import ModelRegistry  # noqa: E402
from hydra_engine.model.walk_forward import walk_forward_evaluate  # noqa: E402
from hydra_engine.store.migrations import v003_models, v004_agent, v006_market_champions  # noqa: E402

SQL = v003_models.SQL + v004_agent.SQL + v006_market_champions.SQL

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def bars(n: int, seed: int = 1, edge: float = 0.3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = np.zeros(n)
    for t in range(6, n):
        r[t] = 0.01 * (edge * np.sign(r[t - 5 : t].sum()) + rng.standard_normal())
    close = 100 * np.cumprod(1 + r)
    spread = np.abs(rng.normal(0.01, 0.003, n)) * close
    return pd.DataFrame(
        {"open": close, "high": close + spread, "low": close - spread, "close": close,
         "volume": rng.integers(100, 5000, n)},
        index=pd.bdate_range("2000-01-03", periods=n),
    )


def timed(fn, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    b = bars(5000)
    print(f"build_features 5000 bars: {timed(lambda: build_features(b)) * 1e3:.1f} ms")
    f, y, r = build_features(b), make_labels(b), make_forward_returns(b)
    for family in ("logistic", "hist_gb", "random_forest"):
        for cal in (None, "sigmoid"):
            spec = ModelSpec(family, train_window_days=750, calibrate=cal)
            fit_s = timed(lambda spec=spec: BaselineModel(spec).fit(f, y), repeat=3)
            model = BaselineModel(spec).fit(f, y)
            row = f.iloc[[-1]]
            pred_ms = timed(lambda model=model, row=row: model.predict_proba(row), repeat=20) * 1e3
            t = time.perf_counter()
            res = walk_forward_evaluate(spec, f.iloc[-2000:], y, r, 2.0, n_splits=5, test_window=200, embargo=5)
            wf_s = time.perf_counter() - t
            print(f"{family:13s} cal={str(cal):7s} fit(750 rows) {fit_s * 1e3:7.1f} ms  predict(1 row) {pred_ms:6.2f} ms  "
                  f"walk-forward 5x200 {wf_s:5.2f} s  oos hit {res.overall.hit_rate:.3f} sharpe {res.overall.sharpe:5.2f}")
    asyncio.run(registry_bench(f, y))


async def registry_bench(f: pd.DataFrame, y: pd.Series) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn = await aiosqlite.connect(Path(tmp) / "store.db")
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.executescript(SQL)
        await conn.commit()
        reg = ModelRegistry(conn, Path(tmp) / "models")
        models = [BaselineModel(ModelSpec("random_forest", {"n_estimators": 200, "random_state": i},
                                          train_window_days=750)).fit(f, y) for i in range(6)]
        t = time.perf_counter()
        versions = [await reg.register(m) for m in models]
        reg_ms = (time.perf_counter() - t) / len(models) * 1e3
        promote = []
        for v in versions:
            t = time.perf_counter()
            await reg.promote(v)
            promote.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(3):
            await reg.rollback()
        rb_ms = (time.perf_counter() - t) / 3 * 1e3
        provider = ChampionProvider(reg)
        await provider.predict_proba(f)
        t = time.perf_counter()
        for _ in range(50):
            await provider.predict_proba(f)
        sig_ms = (time.perf_counter() - t) / 50 * 1e3
        size_kb = sum(p.stat().st_size for p in (Path(tmp) / "models" / versions[0]).iterdir()) / 1024
        print(f"registry: register {reg_ms:.1f} ms (RF 200 trees, {size_kb:.0f} KiB on disk), promote median "
              f"{statistics.median(promote) * 1e3:.1f} ms (incl. verify-load), rollback {rb_ms:.1f} ms, "
              f"champion signal (cached) {sig_ms:.2f} ms")
        await conn.close()


if __name__ == "__main__":
    main()
