"""Typed settings: errors name the dotted key and the accepted range; overrides; sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Literal

import pytest

from hydra_engine.config import (
    BrokerSettings,
    ConfigError,
    HydraSettings,
    RunnerConfig,
    apply_overrides,
    load_dataclass,
    load_settings,
    validate_dataclass,
)
from hydra_engine.markets import CATALOG, DEFAULT_MARKETS


@dataclass(frozen=True, slots=True)
class RiskLike:
    max_drawdown: float = field(default=0.2, metadata={"range": (0, 1)})
    max_orders_per_day: int = field(default=10, metadata={"range": (1, None)})
    mode: str = field(default="a", metadata={"choices": ("a", "b")})
    bands: tuple[float, ...] = (1.0, 2.0)
    note: str | None = None


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hydra.toml"
    p.write_text(text)
    return p


def test_defaults() -> None:
    s = load_settings()
    assert isinstance(s, HydraSettings)
    assert s.broker.kind == "sim" and s.broker.host == "127.0.0.1" and s.broker.client_id == 1
    assert s.runner.schedule_hour == 14 and s.runner.schedule_timezone == "US/Central"
    assert s.markets == DEFAULT_MARKETS
    assert s.sections == {}


def test_generic_loader_names_key_and_range() -> None:
    with pytest.raises(ConfigError, match=r"^risk\.max_drawdown = 1\.5: must be between 0 and 1$") as info:
        load_dataclass(RiskLike, {"max_drawdown": 1.5}, "risk")
    assert info.value.key == "risk.max_drawdown"
    with pytest.raises(ConfigError, match=r"risk\.max_orders_per_day = 0: must be at least 1"):
        load_dataclass(RiskLike, {"max_orders_per_day": 0}, "risk")
    with pytest.raises(ConfigError, match=r"risk\.mode = 'c': must be one of 'a', 'b'"):
        load_dataclass(RiskLike, {"mode": "c"}, "risk")
    with pytest.raises(ConfigError, match=r"risk\.max_dd: unknown key; known keys: bands, max_drawdown, "):
        load_dataclass(RiskLike, {"max_dd": 0.1}, "risk")
    with pytest.raises(ConfigError, match=r"risk\.max_orders_per_day = 'many': must be a whole number"):
        load_dataclass(RiskLike, {"max_orders_per_day": "many"}, "risk")
    with pytest.raises(ConfigError, match=r"risk\.max_orders_per_day = True: must be a whole number"):
        load_dataclass(RiskLike, {"max_orders_per_day": True}, "risk")
    with pytest.raises(ConfigError, match=r"risk\.bands\[1\] = 'x': must be a number"):
        load_dataclass(RiskLike, {"bands": [1, "x"]}, "risk")
    ok = load_dataclass(RiskLike, {"max_drawdown": 1, "bands": [1, 2, 3], "note": None}, "risk")
    assert ok.max_drawdown == 1.0 and isinstance(ok.max_drawdown, float) and ok.bands == (1.0, 2.0, 3.0)


def test_validate_instance() -> None:
    validate_dataclass(RiskLike())
    with pytest.raises(ConfigError, match="risk.max_drawdown = 3"):
        validate_dataclass(RiskLike(max_drawdown=3), "risk")


def test_required_field() -> None:
    @dataclass(frozen=True)
    class Need:
        name: str

    with pytest.raises(ConfigError, match=r"^x\.name: required key is missing$"):
        load_dataclass(Need, {}, "x")


def test_toml_file_with_sections_and_markets(tmp_path: Path) -> None:
    path = write(tmp_path, """
[broker]
kind = "ib"
port = 4002
client_id = 7
account = "DU1234567"
market_data_type = 3

[runner]
schedule_hour = 15
catch_up = false

[[markets]]
symbol = "CL"
max_contracts = 1

[[markets]]
symbol = "HG"
exchange = "COMEX"
decision_time = 13:15:00
time_zone = "America/New_York"
roll_days = 4

[risk]
max_drawdown_pct = 15.0
""")
    s = load_settings(path)
    assert s.source == path
    assert s.broker.port == 4002 and s.broker.market_data_type == 3 and s.broker.account == "DU1234567"
    assert s.runner.schedule_hour == 15 and s.runner.catch_up is False
    cl, hg = s.markets
    assert cl.max_contracts == 1 and cl.roll_days == CATALOG["CL"].roll_days  # catalogue defaults kept
    assert hg.decision_time == time(13, 15) and hg.exchange == "COMEX"
    assert s.market("HG") is hg
    assert s.sections == {"risk": {"max_drawdown_pct": 15.0}}
    from hydra_engine.risk.gate import RiskConfig

    risk = s.section("risk", RiskConfig)
    assert risk.max_drawdown_pct == 15.0
    bad = write(tmp_path, "[risk]\nmax_drawdown_pct = 150\n")
    with pytest.raises(ConfigError, match=r"risk.max_drawdown_pct = 150.0: must be between 0.1 and 100.0"):
        load_settings(bad)  # every section is checked when the settings load


def test_overrides_as_dotted_cli_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "[broker]\nkind = \"ib\"\nport = 4002\n")
    s = load_settings(path, {"broker.client_id": "9", "runner.schedule_minute": "30",
                             "broker.host": "localhost", "markets": "ZO,CL", "risk.max_drawdown_pct": "10",
                             "logging.level": "DEBUG", "runner.catch_up": "false"})
    assert s.broker.client_id == 9 and s.broker.host == "localhost" and s.broker.port == 4002
    assert s.runner.schedule_minute == 30 and s.runner.catch_up is False
    assert [m.symbol for m in s.markets] == ["ZO", "CL"]
    assert s.sections["risk"] == {"max_drawdown_pct": 10}
    assert s.logging.level == "DEBUG"
    with pytest.raises(ConfigError, match=r"broker\.client_id = 0: must be between 1 and"):
        load_settings(path, {"broker.client_id": "0"})
    with pytest.raises(ConfigError, match="broker.port: unknown key|broker.portt: unknown key"):
        load_settings(path, {"broker.portt": "1"})
    with pytest.raises(ConfigError, match="broker.port.x.*not a table"):
        load_settings(path, {"broker.port.x": "1"})
    assert apply_overrides({"a": {"b": 1}}, {"a.c": "2"}) == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("[brokr]\nport = 1\n", r"brokr: unknown section; known sections: agent, alerts, broker"),
        ("[broker]\nkind = \"tws\"\n", r"broker\.kind = 'tws': must be one of 'sim', 'ib'"),
        ("[broker]\nport = 70000\n", r"broker\.port = 70000: must be between 0 and 65535"),
        ("[broker]\nmarket_data_type = 2\n", r"broker\.market_data_type = 2: must be one of 1, 3"),
        ("[broker]\nkind = \"ib\"\nport = 4001\n", r"broker\.port = 4001 is a live-trading port"),
        ("[broker]\naccount = \"U123\"\n", r"broker\.account = 'U123': a paper account id starts with 'DU'"),
        ("[runner]\nschedule_hour = 24\n", r"runner\.schedule_hour = 24: must be between 0 and 23"),
        ("[runner]\nschedule_timezone = \"Mars/Base\"\n", r"runner\.schedule_timezone = 'Mars/Base'"),
        ("[runner]\ntrading_mode = \"live\"\n[broker]\ntrading_mode = \"paper\"\n", r"must agree"),
        ("markets = [\"XX\"]\n", r"markets\[0\] = 'XX': not in the catalogue"),
        ("markets = [\"CL\", \"CL\"]\n", r"markets: CL listed more than once"),
        ("[[markets]]\nsymbol = \"CL\"\nroll_days = 99\n", r"markets\[0\]\.roll_days = 99: must be between 0 and 60"),
        ("[[markets]]\nsymbol = \"CL\"\ntime_zone = \"Nowhere\"\n", r"markets\[0\]: time_zone 'Nowhere'"),
        ("[[markets]]\nsymbol = \"CL\"\ndecision_time = \"25:00\"\n", r"markets\[0\]\.decision_time = '25:00'"),
        ("[[markets]]\nexchange = \"X\"\n", r"markets\[0\]\.symbol: required key is missing"),
        ("[[markets]]\nsymbol = \"QQ\"\nexchange = \"X\"\nfoo = 1\n", r"markets\[0\]\.foo: unknown key"),
        ("[broker\n", r"hydra\.toml: .*line 1"),
        ("markets = []\n", r"markets: at least one market"),
    ],
)
def test_errors_name_key_and_range(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        load_settings(write(tmp_path, text))
    assert str(tmp_path / "hydra.toml") in str(info.value)  # the file is named too


def test_trading_mode_follows_either_key(tmp_path: Path) -> None:
    s = load_settings(None, {"runner.trading_mode": "live"})
    assert s.broker.trading_mode == "live" and s.runner.trading_mode == "live"
    s = load_settings(None, {"broker.trading_mode": "live", "broker.port": 4001, "broker.kind": "ib"})
    assert s.runner.trading_mode == "live" and s.broker.port == 4001


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: configuration file not found"):
        load_settings(tmp_path / "nope.toml")


def test_runner_config_from_plan_mapping() -> None:
    cfg = RunnerConfig.from_mapping({"schedule_hour": 13, "schedule_minute": 45,
                                     "schedule_timezone": "US/Eastern", "trading_mode": "paper"})
    assert (cfg.schedule_hour, cfg.schedule_minute, cfg.schedule_timezone) == (13, 45, "US/Eastern")
    assert RunnerConfig.from_mapping(None) == RunnerConfig()
    assert RunnerConfig.from_mapping(cfg) is cfg
    with pytest.raises(ConfigError, match=r"runner\.schedule_minute = 60: must be between 0 and 59"):
        RunnerConfig.from_mapping({"schedule_minute": 60})
    with pytest.raises(ConfigError, match=r"runner\.trading_mode = 'demo': must be one of 'paper', 'live'"):
        RunnerConfig.from_mapping({"trading_mode": "demo"})


def test_broker_settings_direct() -> None:
    with pytest.raises(ValueError, match="broker.port must be set"):
        BrokerSettings(kind="ib", port=0)
    assert BrokerSettings(kind="ib", port=4002).port == 4002


def test_literal_int_from_cli_string() -> None:
    @dataclass(frozen=True)
    class M:
        t: Literal[1, 3] = 1

    assert load_dataclass(M, {"t": "3"}).t == 3


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra_engine import paths

    monkeypatch.delenv("HYDRA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.data_dir() == (tmp_path / "home" / ".hydra").resolve()
    monkeypatch.setenv("HYDRA_HOME", str(tmp_path / "env"))
    assert paths.data_dir() == (tmp_path / "env").resolve()
    assert paths.data_dir(tmp_path / "cli") == (tmp_path / "cli").resolve()
    assert paths.store_db_path(tmp_path, "ib", "DU7") == tmp_path / "ib-DU7" / "hydra.db"
    assert paths.config_path(tmp_path) == tmp_path / "hydra.toml"
    with pytest.raises(ValueError, match="broker"):
        paths.store_dir(tmp_path, "", "DU7")
    s = load_settings(None, {"store.data_dir": str(tmp_path / "cfg")})
    assert s.data_dir() == (tmp_path / "cfg").resolve()
    assert s.data_dir(tmp_path / "cli") == (tmp_path / "cli").resolve()
    assert load_settings().data_dir() == (tmp_path / "env").resolve()


@pytest.mark.parametrize("section", ["broker", "risk"])
def test_section_that_is_not_a_table(section: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{section}: must be a table"):
        load_settings(None, {section: "3"})
