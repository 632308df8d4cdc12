"""The user's own markets: a daily CSV becomes a market of the embedded exchange, from the settings
(``[markets.NAME] history = "path.csv"``) and from the command line (``--market NAME=path.csv``),
with its own champion; a bad file is refused with the loader's file, line and column and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hydra_engine.config import (
    ConfigError,
    load_settings,
    parse_market_csv_args,
    settings_from_mapping,
    with_history_markets,
)
from hydra_engine.engine import Engine


def write_csv(path: Path, n: int = 1400, seed: int = 4, ohlcv: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    close = 80 * np.exp(np.cumsum(rng.normal(0, 0.012, n)))
    idx = pd.bdate_range("2012-01-02", periods=n)
    if ohlcv:
        frame = pd.DataFrame({"date": idx.strftime("%Y-%m-%d"), "open": close * (1 + rng.normal(0, 0.002, n)),
                              "high": close * 1.01, "low": close * 0.99, "close": close,
                              "volume": rng.integers(2_000, 5_000, n)})
        frame["high"] = frame[["open", "high", "close"]].max(axis=1)
        frame["low"] = frame[["open", "low", "close"]].min(axis=1)
    else:
        frame = pd.DataFrame({"date": idx.strftime("%Y-%m-%d"), "close": close})
    frame.to_csv(path, index=False, float_format="%.4f")
    return path


def test_markets_tables_name_the_symbol_and_a_csv_market_gets_exchange_hours(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    cfg = tmp_path / "hydra.toml"
    cfg.write_text('[markets.ZO]\nmax_contracts = 3\n\n[markets.MYX]\nhistory = "sub/myx.csv"\nmax_contracts = 2\n')
    s = load_settings(cfg)
    zo, myx = s.market("ZO"), s.market("MYX")
    assert zo.exchange == "CBOT" and zo.max_contracts == 3  # catalogue defaults, one key changed
    assert myx.exchange == "CME" and str(myx.decision_time) == "16:15:00" and myx.time_zone == "America/Chicago"
    assert myx.history == str(tmp_path / "sub" / "myx.csv")  # relative to the settings file
    assert [m.symbol for m in s.markets] == ["ZO", "MYX"]
    with pytest.raises(ConfigError, match="markets.XYZ: must be a table"):
        settings_from_mapping({"markets": {"XYZ": 3}})
    with pytest.raises(ConfigError, match="exchange"):  # unknown symbol without a history: needs its facts
        settings_from_mapping({"markets": {"XYZ": {"max_contracts": 1}}})


def test_market_flag_adds_or_prices_a_market(tmp_path) -> None:
    assert parse_market_csv_args(["myx=a.csv", "CL=b.csv"]) == {"MYX": "a.csv", "CL": "b.csv"}
    for bad in ("MYX", "=a.csv", "MYX="):
        with pytest.raises(ConfigError, match="expected NAME=path.csv"):
            parse_market_csv_args([bad])
    with pytest.raises(ConfigError, match="more than once"):
        parse_market_csv_args(["A=x.csv", "a=y.csv"])
    s = with_history_markets(load_settings(None), {"MYX": "a.csv", "CL": "b.csv"})
    assert [m.symbol for m in s.markets] == ["CL", "ZO", "MYX"]
    assert s.market("CL").exchange == "NYMEX" and s.market("CL").history.endswith("b.csv")
    assert Path(s.market("MYX").history).is_absolute()


async def test_a_csv_market_trades_with_a_champion_of_its_own(tmp_path) -> None:
    csv = write_csv(tmp_path / "myx.csv")
    settings = with_history_markets(load_settings(None, {"markets": "ZO"}), {"MYX": str(csv)})
    eng = Engine(settings, data_dir=tmp_path / "data", agent=False)
    await eng.start()
    try:
        await eng.run_days(2)
        rows = await eng.store.cycles.recent(limit=20)
        assert {r.market for r in rows} == {"ZO", "MYX"}
        myx = [r for r in rows if r.market == "MYX"]
        assert all(r.summary.get("p_up") is not None for r in myx), [r.summary for r in myx]
        champions = eng.status().champions
        assert champions["MYX"] and champions["ZO"] and champions["MYX"] != champions["ZO"]
        details = await eng.broker.resolve_contract(settings.market("MYX"))
        assert details.active.symbol == "MYX"
    finally:
        await eng.stop()


def test_a_bad_csv_is_refused_naming_file_line_and_column(tmp_path) -> None:
    csv = write_csv(tmp_path / "bad.csv", n=300)
    lines = csv.read_text().splitlines()
    cells = lines[41].split(",")
    cells[4] = "n0pe"
    lines[41] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "HYDRA_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "hydra_tui.cli", "--no-ui", "--days", "1", "--data-dir",
                          str(tmp_path / "data"), "--market", f"BAD={csv}"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2, out.stderr[-2000:]
    assert str(csv) in out.stderr and "line 42" in out.stderr and "close" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
