"""``hydra-tui --no-ui``: the same Engine on plain asyncio. Never imports Textual.

Logs go to stderr as key-value lines and to a log file in the store directory. SIGINT, SIGTERM
and SIGHUP stop the engine cleanly (a hung-up terminal must not kill it mid-write). With the
embedded exchange and ``--days N`` it plays N trading days lock-step and exits 0; without
``--days`` it runs until stopped (a few real seconds between simulated days). ``--broker ib``
uses an IB Gateway in real time, with APScheduler firing each market's decision.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog

LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


def settings_from_args(args: argparse.Namespace) -> Any:
    """Settings from ``--config`` (or ``<data dir>/hydra.toml`` when present) plus CLI overrides."""
    from hydra_engine import paths
    from hydra_engine.config import ConfigError, load_settings, parse_market_csv_args, with_history_markets

    overrides: dict[str, Any] = {}
    for item in getattr(args, "overrides", None) or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set risk.max_contracts=3", str(item))
        overrides[key.strip()] = value.strip()
    if getattr(args, "broker", None):
        overrides["broker.kind"] = args.broker
    if getattr(args, "port", None) is not None:
        overrides["broker.port"] = args.port
    if getattr(args, "client_id", None) is not None:
        overrides["broker.client_id"] = args.client_id
    config = getattr(args, "config", None)
    if config is None:
        default = paths.config_path(paths.data_dir(getattr(args, "data_dir", None)))
        config = default if default.exists() else None
    settings = load_settings(config, overrides)
    return with_history_markets(settings, parse_market_csv_args(getattr(args, "market_csv", None) or []))


class _Tee:
    """Final structlog processor: writes a key-value line to the log file, returns it for stderr."""

    def __init__(self, file: TextIO | None, json_file: bool) -> None:
        self._file = file
        self._kv = structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"], drop_missing=True)
        self._json = structlog.processors.JSONRenderer(default=str) if json_file else None

    def __call__(self, logger: Any, name: str, event_dict: dict[str, Any]) -> str:
        line = self._kv(logger, name, dict(event_dict))
        if self._file is not None:
            text = self._json(logger, name, dict(event_dict)) if self._json is not None else line
            self._file.write(str(text) + "\n")
            self._file.flush()
        return str(line)


def configure_logging(level: str, log_file: Path | None, *, json_file: bool = False,
                      stream: TextIO | None = None, bus: Any = None) -> TextIO | None:
    """structlog to ``stream`` (stderr) as key-values and to ``log_file``; returns the open file."""
    fh: TextIO | None = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = open(log_file, "a", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if bus is not None:
        from hydra_engine.events import LogToBus

        processors.append(LogToBus(bus))
    processors.append(_Tee(fh, json_file))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    return fh


def log_file_for(settings: Any, data_dir: Path) -> Path:
    from hydra_engine.engine import SIM_DEFAULT_ACCOUNT
    from hydra_engine.paths import store_dir

    if settings.logging.file is not None:
        return Path(settings.logging.file)
    account = settings.broker.account or (SIM_DEFAULT_ACCOUNT if settings.broker.kind == "sim" else "")
    if account:
        return store_dir(data_dir, settings.broker.kind, account) / "hydra.log"
    return data_dir / "hydra.log"


def run_headless(args: argparse.Namespace) -> int:
    """Exit code: 0 clean stop, 1 failure while running, 2 bad input or state refused before trading
    (settings, data dir, store, exchange state, live safety)."""
    from hydra_engine.config import ConfigError
    from hydra_engine.paths import DataDirError, check_data_dir

    try:
        settings = settings_from_args(args)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"hydra-tui: {exc}\n")
        return 2
    days = getattr(args, "days", None)
    if days is not None and days < 0:
        sys.stderr.write(f"hydra-tui: --days {days}: must be 0 or more\n")
        return 2
    day_seconds = getattr(args, "day_seconds", None)
    if day_seconds is not None and not 0 <= day_seconds <= 3600:
        sys.stderr.write(f"hydra-tui: --day-seconds {day_seconds}: must be between 0 and 3600\n")
        return 2
    data_dir = settings.data_dir(getattr(args, "data_dir", None))
    try:
        check_data_dir(data_dir)
        fh = configure_logging(settings.logging.level, log_file_for(settings, data_dir),
                               json_file=settings.logging.format == "json")
    except DataDirError as exc:
        sys.stderr.write(f"hydra-tui: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"hydra-tui: cannot open the log file {exc.filename}: {exc.strerror or exc}\n")
        return 2
    try:
        return asyncio.run(_main(settings, args, data_dir))
    except KeyboardInterrupt:
        return 0
    finally:
        if fh is not None:
            fh.close()


async def _main(settings: Any, args: argparse.Namespace, data_dir: Path) -> int:
    from hydra_engine.config import ConfigError
    from hydra_engine.engine import Engine
    from hydra_engine.engine_checks import is_refusal

    log = structlog.get_logger("hydra_tui.headless")
    try:
        engine = Engine(settings, data_dir=data_dir, live_confirmed=bool(getattr(args, "yes_i_mean_live", False)),
                        seed=getattr(args, "seed", None), new_exchange=bool(getattr(args, "new_exchange", False)))
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"hydra-tui: {exc}\n")
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signame: str) -> None:
        log.warning("headless.signal", signal=signame)
        stop.set()
        if engine.driver is not None:
            engine.driver.stop()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await engine.start()
    except Exception as exc:  # noqa: BLE001 - reported, engine stopped
        if is_refusal(exc):
            log.error("headless.refused", error=str(exc), kind=type(exc).__name__)
            sys.stderr.write(f"hydra-tui: {exc}\n")
            await engine.stop()
            return 2
        log.exception("headless.start_failed")
        sys.stderr.write(f"hydra-tui: cannot start: {type(exc).__name__}: {exc}\n")
        await engine.stop()
        return 1
    code = 0
    try:
        days = getattr(args, "days", None)
        if engine.driver is not None:
            day_seconds = getattr(args, "day_seconds", None)
            pause = (float(day_seconds) if day_seconds is not None
                     else 0.0 if days is not None else settings.runner.lockstep_delay_s)
            run = asyncio.ensure_future(engine.run_days(days, pause_s=pause))
            waiter = asyncio.ensure_future(stop.wait())
            await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                engine.driver.stop()
                await asyncio.wait({run}, timeout=settings.runner.stop_timeout_s)
            waiter.cancel()
            if run.done() and not run.cancelled() and run.exception() is not None:
                raise run.exception()  # type: ignore[misc]
        else:
            if days is not None:
                log.warning("headless.days_ignored", reason="--days applies to the embedded exchange only")
            await stop.wait()
        positions = await held_positions(engine)
        text = await summary_text(engine, positions)
        log.info("headless.summary", **engine_summary_fields(engine, positions))
    except Exception as exc:  # noqa: BLE001
        log.exception("headless.failed")
        sys.stderr.write(f"hydra-tui: {type(exc).__name__}: {exc}\n")
        text, code = "", 1
    finally:
        await engine.stop()
    if text:
        sys.stdout.write(text)
    return code


async def held_positions(engine: Any) -> dict[str, float] | None:
    """What the account holds now, asked of the broker (the last cycle's view may be older, or absent
    with ``--days 0``); None when the broker cannot tell."""
    try:
        held = await engine.broker.get_positions()
    except Exception:  # noqa: BLE001 - the summary then says "unknown", never "flat"
        structlog.get_logger("hydra_tui.headless").warning("headless.positions_unknown", exc_info=True)
        return None
    return {p.local_symbol: p.quantity for p in held if p.quantity}


async def _net_liquidation(engine: Any, known: float | None) -> float | None:
    if known is not None:
        return known
    try:
        return float((await engine.broker.get_account_summary()).net_liquidation)
    except Exception:  # noqa: BLE001 - reported as unknown
        return None


def engine_summary_fields(engine: Any, positions: dict[str, float] | None = None) -> dict[str, Any]:
    st = engine.status()
    return {"mode": st.mode, "cycles": st.cycles_run, "net_liquidation": st.net_liquidation,
            "positions": dict(st.positions) if positions is None else positions, "trading_state": st.trading_state,
            "store": st.store_dir, "sim_time": st.now.isoformat()}


async def summary_text(engine: Any, positions: dict[str, float] | None = None) -> str:
    """A few lines for the terminal after a headless run; ``positions`` as the broker reports them now
    (None: unknown, never shown as flat)."""
    st = engine.status()
    fills = await engine.fill_journal.fills()
    nlv = await _net_liquidation(engine, st.net_liquidation)
    if positions is None:
        shown = "unknown (the broker did not say)"
    else:
        shown = str(positions or "flat")
    lines = [
        f"HYDRA {st.mode}: {st.cycles_run} cycle(s), {len(fills)} fill(s), state {st.trading_state}"
        + (" (paused)" if st.paused else ""),
        f"  net liquidation {nlv:,.2f}" if nlv is not None else "  net liquidation unknown",
        f"  positions {shown}",
        (f"  gross exposure {st.gross_exposure:,.2f} of {st.max_gross_exposure:,.2f} (risk.max_gross_exposure)"
         + (f"; re-entry at {st.size_fraction:g} of every size cap" if st.size_fraction < 1 else ""))
        if st.gross_exposure is not None and st.max_gross_exposure is not None else "  gross exposure unknown",
        f"  clock {st.now.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; store {st.store_dir}",
    ]
    return "\n".join(lines) + "\n"
