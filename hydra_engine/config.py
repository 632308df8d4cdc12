"""Typed settings: TOML file + dotted command-line overrides -> validated, frozen dataclasses.

Every section is a dataclass; ranges and choices live next to the field as
``field(metadata={"range": (lo, hi)})`` (inclusive; ``None`` for an open end) or
``{"choices": (...)}``. ``load_dataclass`` is generic, so the risk and agent configs are validated
the same way: a bad value produces ``ConfigError`` naming the dotted key, the value and the
accepted range, and an unknown key names the known ones. Nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

from hydra_engine import paths
from hydra_engine.markets import CATALOG, DEFAULT_MARKETS, MarketConfig, find_market

T = TypeVar("T")

LIVE_PORTS = (4001, 7496)
PAPER_PORTS = (4002, 7497)


class ConfigError(ValueError):
    """A setting is wrong. ``key`` is the dotted key (``risk.max_drawdown``) when one is to blame."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


# ---------------------------------------------------------------------------------------------
# Generic loader


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " or ".join(_fmt(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type_name(a) for a in args)
    if origin in (tuple, list):
        return "a list"
    if dataclasses.is_dataclass(tp) or origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a table"
    return {time: "a time like 14:00", date: "a date like 2026-01-31"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` converted to ``tp`` or ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{key} = {_fmt(value)}: must be {_type_name(tp)}", key)
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        if isinstance(value, str):
            for a in args:
                if isinstance(a, int) and not isinstance(a, bool) and value.strip() == str(a):
                    return a
        raise ConfigError(f"{key} = {_fmt(value)}: must be one of {', '.join(_fmt(a) for a in args)}", key)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} = {_fmt(value)}: must be a table", key)
        return load_dataclass(tp, value, key)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {_fmt(value)}: must be a list", key)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise ConfigError(f"{key}: must have {len(args)} items, got {len(value)}", key)
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp in (dict, Mapping) or origin is typing.Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} = {_fmt(value)}: must be a table", key)
        return dict(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value == member.value or (isinstance(value, str) and value.upper() == member.name):
                return member
        raise ConfigError(
            f"{key} = {_fmt(value)}: must be one of {', '.join(_fmt(m.value) for m in tp)}", key
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{key} = {_fmt(value)}: must be true or false", key)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value.strip())
        raise ConfigError(f"{key} = {_fmt(value)}: must be a whole number", key)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value.strip())
            except ValueError:
                raise ConfigError(f"{key} = {_fmt(value)}: must be a number", key) from None
        else:
            raise ConfigError(f"{key} = {_fmt(value)}: must be a number", key)
        if out != out:
            raise ConfigError(f"{key} = nan: must be a number", key)
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} = {_fmt(value)}: must be a string (quote it)", key)
    if tp is Path:
        if isinstance(value, (str, os.PathLike)) and str(value).strip():
            return Path(value).expanduser()
        raise ConfigError(f"{key} = {_fmt(value)}: must be a file or directory path", key)
    if tp in (time, date):
        if isinstance(value, tp) and not isinstance(value, datetime):
            return value
        try:
            return tp.fromisoformat(value.strip())
        except (AttributeError, ValueError):
            raise ConfigError(f"{key} = {_fmt(value)}: must be {_type_name(tp)}", key) from None
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{key} = {_fmt(value)}: must be {_type_name(tp)}", key)
    return value


def _check_metadata(meta: Mapping[str, Any], value: Any, key: str) -> None:
    if value is None:
        return
    rng = meta.get("range", EXTRA_RANGES.get(key))
    if rng is not None:
        lo, hi = rng
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if lo is not None and hi is not None:
                msg = f"must be between {lo} and {hi}"
            elif lo is not None:
                msg = f"must be at least {lo}"
            else:
                msg = f"must be at most {hi}"
            raise ConfigError(f"{key} = {_fmt(value)}: {msg}", key)
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key} = {_fmt(value)}: must be one of {', '.join(_fmt(c) for c in choices)}", key)


def load_dataclass(cls: type[T], mapping: Mapping[str, Any] | None, path: str = "",
                   extra_keys: typing.Collection[str] = ()) -> T:
    """Build dataclass ``cls`` from ``mapping``, validating types, ranges and choices.

    Missing keys take the field default; unknown keys and bad values raise ``ConfigError`` naming
    the dotted key under ``path`` (with the closest known key). ``extra_keys`` are known but read by
    the caller, not passed to ``cls``. Errors raised by ``cls.__post_init__`` (ValueError/TypeError)
    are re-raised as ConfigError prefixed with ``path``.
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"load_dataclass needs a dataclass type, got {cls!r}")
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{path or 'settings'}: must be a table, got {_fmt(mapping)}", path)
    try:
        hints = typing.get_type_hints(cls)
    except NameError as exc:  # a string annotation naming something not importable at module level
        raise TypeError(f"cannot resolve the field types of {cls.__name__}: {exc}") from exc
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    known = sorted({*fields, *extra_keys})
    unknown = [k for k in mapping if k not in fields and k not in extra_keys]
    if unknown:
        k = _join(path, str(unknown[0]))
        if not known:
            raise ConfigError(f"{k}: unknown key; [{path}] has no settings yet", k)
        raise ConfigError(f"{k}: unknown key; known keys: {', '.join(known)}{did_you_mean(str(unknown[0]), known)}", k)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: required key is missing", key)
            continue
        value = _coerce(hints.get(name, Any), mapping[name], key)
        _check_metadata(f.metadata, value, key)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        text = str(exc)
        if path and text.startswith(path + "."):
            raise ConfigError(text, text.split(" ", 1)[0]) from exc
        raise ConfigError(f"{path or cls.__name__}: {text}", path) from exc


def validate_dataclass(obj: Any, path: str = "") -> None:
    """Check an already-built dataclass instance's ranges/choices (for configs built in code)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        _check_metadata(f.metadata, value, _join(path, f.name))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate_dataclass(value, _join(path, f.name))


# ---------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """How to reach the broker. ``kind = "sim"`` starts the embedded exchange (``port`` 0: any free port)."""

    kind: Literal["sim", "ib"] = "sim"
    host: str = "127.0.0.1"
    port: int = field(default=0, metadata={"range": (0, 65535)})
    client_id: int = field(default=1, metadata={"range": (1, 2**31 - 1)})
    account: str = ""
    """Empty: take the account the broker reports (paper mode requires it to start with DU)."""
    market_data_type: Literal[1, 3] = 1
    """1 live, 3 delayed (IB paper accounts without a subscription)."""
    trading_mode: Literal["paper", "live"] = "paper"
    connect_timeout_s: float = field(default=10.0, metadata={"range": (0.5, 300.0)})
    readonly: bool = False
    restart_window: str = "23:45-00:05"
    """IB Gateway's daily restart, local "HH:MM-HH:MM" in ``restart_time_zone`` ("" for none): decisions
    due inside it wait until it ends and an outage inside it raises no alert (broker "ib" only)."""
    restart_time_zone: str = "America/New_York"

    def __post_init__(self) -> None:
        from hydra_engine.operations.restart_window import RestartWindow

        try:
            RestartWindow.parse(self.restart_window, self.restart_time_zone)
        except ValueError as exc:
            key = "restart_time_zone" if "time zone" in str(exc) else "restart_window"
            raise ValueError(f"broker.{key} = {getattr(self, key)!r}: {exc}") from None
        if self.kind == "ib" and self.port == 0:
            raise ValueError("broker.port must be set for an IB gateway (4002 for paper)")
        if self.trading_mode == "paper" and self.port in LIVE_PORTS:
            raise ValueError(
                f"broker.port = {self.port} is a live-trading port but trading_mode = 'paper' "
                f"(paper ports: {', '.join(map(str, PAPER_PORTS))})"
            )
        if self.trading_mode == "paper" and self.account and not self.account.startswith("DU"):
            raise ValueError(f"broker.account = {self.account!r}: a paper account id starts with 'DU'")


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """The daily runner's settings; ``from_mapping`` accepts the original plan's dict keys."""

    schedule_hour: int = field(default=14, metadata={"range": (0, 23)})
    schedule_minute: int = field(default=0, metadata={"range": (0, 59)})
    schedule_timezone: str = "US/Central"
    trading_mode: Literal["paper", "live"] = "paper"
    misfire_grace_s: int = field(default=3600, metadata={"range": (1, 86_400)})
    catch_up: bool = True
    """Run a missed decision once at start-up."""
    cycle_timeout_s: float = field(default=1800.0, metadata={"range": (1.0, 86_400.0)})
    stop_timeout_s: float = field(default=60.0, metadata={"range": (0.0, 3600.0)})
    """How long ``stop()`` lets a running cycle finish."""
    broker_time_tick_s: float = field(default=30.0, metadata={"range": (0.01, 3600.0)})
    """Broker-time mode: how often (broker seconds) to check for due decisions."""
    lockstep_delay_s: float = field(default=2.0, metadata={"range": (0.0, 60.0)})
    """Lock-step demo: real seconds between simulated days so a person can watch."""

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.schedule_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"runner.schedule_timezone = {self.schedule_timezone!r}: not a known IANA zone (e.g. 'US/Central')"
            ) from None

    @classmethod
    def from_mapping(cls, mapping: "RunnerConfig | Mapping[str, Any] | None") -> "RunnerConfig":
        """A RunnerConfig from a dict with the plan's keys (``schedule_hour``...), or as given."""
        if isinstance(mapping, RunnerConfig):
            return mapping
        return load_dataclass(cls, mapping or {}, "runner")


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where the stores live; ``data_dir`` None means ``$HYDRA_HOME`` or ``~/.hydra``."""

    data_dir: Path | None = None
    backups_kept: int = field(default=5, metadata={"range": (1, 100)})


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: Path | None = None
    """Log file; None: ``<store dir>/hydra.log``."""
    format: Literal["console", "json"] = "json"


@dataclass(frozen=True, slots=True)
class SimSettings:
    """The embedded exchange as the engine starts it (section ``[sim]``)."""

    seed: int | None = field(default=None, metadata={"range": (0, 2**31 - 1)})
    """Market universe and fault seed; None: ``--seed`` or 7."""
    faults: str | None = None
    """Fault injection spec (hydra_engine/sim/FAULTS.md); checked here, before anything starts."""
    starting_cash: float = field(default=1_000_000.0, metadata={"range": (1.0, 1e11)})

    def __post_init__(self) -> None:
        if self.faults:
            from hydra_engine.sim.faults import FaultSpecError, parse_faults

            try:
                parse_faults(self.faults)
            except FaultSpecError as exc:
                raise ValueError(f"sim.faults = {self.faults!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class TuiSettings:
    """Section ``[tui]``: the terminal interface has no settings yet, so every key is refused."""


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Section ``[model]``: no settings yet (the first champion's spec is ``agent.default_spec``)."""


EXTRA_SECTIONS: tuple[str, ...] = ("risk", "agent", "model", "execution", "sim", "tui", "alerts", "heartbeat",
                                   "retention")
"""Sections whose dataclasses live with their owners; validated by ``section_schema`` when the
settings load, kept as raw tables for ``HydraSettings.section``."""

_SCHEMAS: dict[str, tuple[str, str]] = {
    "risk": ("hydra_engine.risk.gate", "RiskConfig"),
    "agent": ("hydra_engine.agent.core", "AgentConfig"),
    "execution": ("hydra_engine.execution.cycle", "CycleConfig"),
    "sim": (__name__, "SimSettings"),
    "tui": (__name__, "TuiSettings"),
    "model": (__name__, "ModelSettings"),
    "alerts": ("hydra_engine.operations.settings", "AlertSettings"),
    "heartbeat": ("hydra_engine.operations.settings", "HeartbeatSettings"),
    "retention": ("hydra_engine.operations.settings", "RetentionSettings"),
}
"""One schema: the dataclass that every key of each extra section must fit (imported on use)."""

AGENT_EXTRA_KEYS = ("enabled",)
"""``[agent]`` keys the engine reads itself (``enabled = false``: no self-healing loop)."""

EXTRA_RANGES: dict[str, tuple[float | None, float | None]] = {
    "agent.alarms_per_1000_days_per_stream": (0.001, 1000.0),
    "agent.reference_days": (20, 100_000),
    "agent.findings_lookback_days": (1, 3650),
    "agent.max_catchup_days": (1, 10_000),
    "agent.experiment_time_limit_s": (1.0, 86_400.0),
    "agent.experiment_wait_s": (0.0, 86_400.0),
    "agent.wf_splits": (2, 100),
    "agent.wf_test_window": (5, 10_000),
    "agent.wf_min_train": (20, 100_000),
    "agent.cost_bps": (0.0, 1000.0),
    "agent.label_horizon": (1, 60),
    "agent.overfit_gap_threshold": (0.0, 10.0),
    "agent.gate.dm_alpha": (0.0001, 0.4999),
    "agent.gate.min_weighted_win": (0.0, 0.9999),
    "agent.gate.dsr_min": (0.0, 0.9999),
    "agent.gate.half_life_windows": (0.1, 1000.0),
    "agent.gate.dm_horizon": (1, 60),
    "agent.gate.min_oos_days": (1, 100_000),
    "agent.playbook.budget_per_cycle": (0, 100),
    "agent.playbook.cooldown_days": (0, 3650),
    "agent.playbook.rejected_cooldown_days": (0, 3650),
    "agent.playbook.rows_per_feature": (1, 1000),
    "agent.rollback.patience_days": (1, 1000),
    "agent.rollback.window_days": (1, 1000),
    "agent.rollback.min_days": (1, 1000),
    "agent.rollback.enter_margin": (-10.0, 10.0),
    "agent.rollback.exit_margin": (-10.0, 10.0),
    "agent.rollback.cooldown_days": (0, 3650),
    "agent.rollback.watch_days": (1, 10_000),
    "agent.derisk_size_fraction": (0.0, 1.0),
    "agent.derisk_alpha": (0.0001, 0.5),
    "agent.derisk_min_days": (5, 1000),
    "agent.episode_quiet_days": (1, 3650),
}
"""Accepted ranges of settings whose dataclasses (the agent's) carry none in their field metadata."""


def section_schema(name: str) -> type:
    """The dataclass that section ``name`` (one of ``EXTRA_SECTIONS``) is validated against."""
    import importlib

    module, attr = _SCHEMAS[name]
    cls: type = getattr(importlib.import_module(module), attr)
    return cls


def validate_section(name: str, raw: Mapping[str, Any]) -> Any:
    """Section ``name`` as its dataclass, or ConfigError naming the dotted key and accepted range."""
    if name == "agent":
        if "enabled" in raw:
            _coerce(bool, raw["enabled"], "agent.enabled")
        cfg = load_dataclass(section_schema(name), raw, name, extra_keys=AGENT_EXTRA_KEYS)
        if "default_spec" in raw:  # the first champion's spec, checked now rather than at bootstrap
            from hydra_engine.model.baseline import ModelSpec

            try:
                ModelSpec.from_dict(cfg.default_spec)  # type: ignore[attr-defined]
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigError(f"agent.default_spec: {exc}", "agent.default_spec") from None
        if cfg.executor == "dask":  # type: ignore[attr-defined]  # the address is checked now, the scheduler at start
            from hydra_engine.agent.dask_executor import check_scheduler_address

            try:
                check_scheduler_address(cfg.scheduler)  # type: ignore[attr-defined]
            except ValueError as exc:
                raise ConfigError(str(exc), "agent.scheduler") from None
        return cfg
    return load_dataclass(section_schema(name), raw, name)

_TYPED_SECTIONS = ("broker", "runner", "store", "logging", "markets")


@dataclass(frozen=True, slots=True)
class HydraSettings:
    """Everything the engine is configured with; built by ``load_settings``."""

    broker: BrokerSettings = field(default_factory=BrokerSettings)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    store: StoreSettings = field(default_factory=StoreSettings)
    markets: tuple[MarketConfig, ...] = DEFAULT_MARKETS
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Raw tables for the sections in ``EXTRA_SECTIONS`` (risk, agent...)."""
    source: Path | None = None

    def section(self, name: str, cls: type[T]) -> T:
        """Validate raw section ``name`` as dataclass ``cls`` (errors name ``name.key``)."""
        return load_dataclass(cls, self.sections.get(name, {}), name)

    def market(self, symbol: str) -> MarketConfig:
        return find_market(self.markets, symbol)

    def data_dir(self, cli_value: str | os.PathLike[str] | None = None) -> Path:
        """``--data-dir``, else ``store.data_dir``, else ``$HYDRA_HOME``, else ``~/.hydra``."""
        if cli_value is not None and str(cli_value).strip():
            return paths.data_dir(cli_value)
        return paths.data_dir(self.store.data_dir)


CSV_MARKET_DEFAULTS: Mapping[str, Any] = {
    "exchange": "CME", "currency": "USD", "decision_time": "16:15", "session_close": "16:00",
    "time_zone": "America/Chicago", "roll_days": 5, "max_contracts": 1, "max_adv_fraction": 0.01,
}
"""A market priced from the user's CSV that the catalogue does not know: the embedded exchange lists
it with CME Globex-like hours (closing 16:00 Chicago), so it is decided at 16:15 Chicago."""


def _load_markets(raw: Any) -> tuple[MarketConfig, ...]:
    if isinstance(raw, str):
        raw = [v.strip() for v in raw.split(",") if v.strip()]
    if isinstance(raw, Mapping):  # [markets.NAME] tables: the name is the symbol
        items: list[Any] = []
        for name, table in raw.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"markets.{name}: must be a table ([markets.{name}])", f"markets.{name}")
            items.append({"symbol": name, **table})
        raw = items
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(f"markets = {_fmt(raw)}: must be a list of symbols or [[markets]] tables", "markets")
    out: list[MarketConfig] = []
    for i, item in enumerate(raw):
        key = f"markets[{i}]"
        if isinstance(item, str):
            if item not in CATALOG:
                raise ConfigError(
                    f"{key} = {item!r}: not in the catalogue ({', '.join(sorted(CATALOG))}); "
                    "use a [[markets]] table with symbol, exchange, decision_time and time_zone",
                    key,
                )
            out.append(CATALOG[item])
            continue
        if not isinstance(item, Mapping):
            raise ConfigError(f"{key}: must be a symbol or a table", key)
        symbol = item.get("symbol")
        if not isinstance(symbol, str):
            raise ConfigError(f"{key}.symbol: required key is missing (e.g. symbol = \"CL\")", f"{key}.symbol")
        merged: dict[str, Any] = {}
        if symbol in CATALOG:
            base = CATALOG[symbol]
            merged = {f.name: getattr(base, f.name) for f in dataclasses.fields(MarketConfig)}
        elif item.get("history"):
            merged = {"description": f"{symbol} (user history)", **CSV_MARKET_DEFAULTS}
        merged.update(item)
        out.append(load_dataclass(MarketConfig, merged, key))
    symbols = [m.symbol for m in out]
    dupes = sorted({s for s in symbols if symbols.count(s) > 1})
    if dupes:
        raise ConfigError(f"markets: {', '.join(dupes)} listed more than once", "markets")
    return tuple(out)


def parse_override_value(text: str) -> Any:
    """A command-line value read as a TOML literal (``3``, ``0.2``, ``true``, ``[1,2]``), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` with dotted keys set (``{"broker.port": 4002}``); strings parsed as TOML."""
    out: dict[str, Any] = _deep_copy(raw)
    for dotted, value in overrides.items():
        parts = [p for p in str(dotted).split(".")]
        if not parts or any(not p for p in parts):
            raise ConfigError(f"override {dotted!r}: must be a dotted key such as broker.port", str(dotted))
        if isinstance(value, str):
            value = parse_override_value(value)
        node = out
        for depth, p in enumerate(parts[:-1]):
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"override {dotted!r}: {'.'.join(parts[: depth + 1])} is not a table", str(dotted)
                )
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in m.items()}


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; errors name the file (and tomllib's line and column)."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def settings_from_mapping(raw: Mapping[str, Any], source: Path | None = None) -> HydraSettings:
    """Validate a whole settings mapping (as parsed from TOML, overrides applied)."""
    unknown = [k for k in raw if k not in _TYPED_SECTIONS and k not in EXTRA_SECTIONS]
    if unknown:
        names = sorted(_TYPED_SECTIONS + EXTRA_SECTIONS)
        raise ConfigError(f"{unknown[0]}: unknown section; known sections: {', '.join(names)}"
                          f"{did_you_mean(str(unknown[0]), names)}", str(unknown[0]))
    for name in ("broker", "runner", "store", "logging", *EXTRA_SECTIONS):
        if name in raw and not isinstance(raw[name], Mapping):
            raise ConfigError(f"{name}: must be a table ([{name}])", name)
    broker_raw = dict(raw.get("broker") or {})
    runner_raw = dict(raw.get("runner") or {})
    # One trading mode: either key sets both; both set and different is an error.
    b_mode, r_mode = broker_raw.get("trading_mode"), runner_raw.get("trading_mode")
    if b_mode is not None and r_mode is not None and b_mode != r_mode:
        raise ConfigError(
            f"broker.trading_mode = {_fmt(b_mode)} but runner.trading_mode = {_fmt(r_mode)}: they must agree",
            "runner.trading_mode",
        )
    if b_mode is not None and r_mode is None:
        runner_raw["trading_mode"] = b_mode
    if r_mode is not None and b_mode is None:
        broker_raw["trading_mode"] = r_mode
    broker = load_dataclass(BrokerSettings, broker_raw, "broker")
    runner = load_dataclass(RunnerConfig, runner_raw, "runner")
    store = load_dataclass(StoreSettings, raw.get("store") or {}, "store")
    logging = load_dataclass(LoggingSettings, raw.get("logging") or {}, "logging")
    markets = _load_markets(raw["markets"]) if "markets" in raw else DEFAULT_MARKETS
    if not markets:
        raise ConfigError("markets: at least one market is needed", "markets")
    markets = tuple(_resolve_history(m, source) for m in markets)
    sections: dict[str, Mapping[str, Any]] = {}
    for name in EXTRA_SECTIONS:  # every key checked now, before anything starts
        if name in raw:
            validate_section(name, raw[name])
            sections[name] = dict(raw[name])
    if "enabled" in sections.get("agent", {}):  # "no", "off", "0" from --set read as false, not as a truthy string
        sections["agent"] = {**sections["agent"], "enabled": _coerce(bool, sections["agent"]["enabled"], "agent.enabled")}
    return HydraSettings(
        broker=broker, runner=runner, store=store, markets=markets, logging=logging,
        sections=sections, source=source,
    )


def _resolve_history(m: MarketConfig, source: Path | None) -> MarketConfig:
    """A relative ``history`` path is read from the settings file's folder (else the working directory)."""
    if not m.history:
        return m
    path = Path(m.history).expanduser()
    if not path.is_absolute():
        path = (source.parent if source is not None else Path.cwd()) / path
    return dataclasses.replace(m, history=str(path))


def parse_market_csv_args(items: typing.Iterable[str]) -> dict[str, str]:
    """``--market NAME=path.csv`` values as {NAME: path}; a bad one is a ConfigError naming it."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = str(item).partition("=")
        name, path = name.strip().upper(), path.strip()
        if not sep or not name or not path:
            raise ConfigError(f"--market {item!r}: expected NAME=path.csv, e.g. --market MYX=myx_daily.csv", "--market")
        if name in out:
            raise ConfigError(f"--market {name}: given more than once", "--market")
        out[name] = path
    return out


def with_history_markets(settings: HydraSettings, histories: Mapping[str, str]) -> HydraSettings:
    """``settings`` with a market priced from each CSV (``--market NAME=path.csv``): a market already
    configured gets the history, any other is added (catalogue defaults, else CSV_MARKET_DEFAULTS)."""
    if not histories:
        return settings
    markets = list(settings.markets)
    for name, path in histories.items():
        resolved = str(Path(path).expanduser().resolve())
        i = next((k for k, m in enumerate(markets) if m.symbol == name), None)
        if i is not None:
            markets[i] = dataclasses.replace(markets[i], history=resolved)
        else:
            markets.extend(_load_markets([{"symbol": name, "history": resolved}]))
    return dataclasses.replace(settings, markets=tuple(markets))


def load_settings(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> HydraSettings:
    """Settings from TOML file ``path`` (None: defaults only) with dotted ``overrides`` applied."""
    raw: dict[str, Any] = read_toml(Path(path)) if path is not None else {}
    if overrides:
        raw = apply_overrides(raw, overrides)
    try:
        return settings_from_mapping(raw, Path(path) if path is not None else None)
    except ConfigError as exc:
        if path is not None:
            raise ConfigError(f"{path}: {exc}", exc.key) from None
        raise
