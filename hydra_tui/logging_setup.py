"""Logging for the Textual app: structlog and the stdlib loggers to the store's rotating log file
and to an in-memory ring the log pane reads, never to the terminal (it belongs to Textual).

Configured before the App starts, so nothing written during start-up can land on the screen.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import logging.handlers
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
STDLIB_LOGGERS = ("ib_async", "apscheduler", "asyncio", "aiosqlite")
"""Third-party loggers that would otherwise reach stderr through logging's last resort."""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line for the log pane."""

    at: dt.datetime
    level: str
    text: str


@dataclass
class LogRing:
    """A capped, thread-safe buffer of recent log lines; ``seq`` counts every line ever added."""

    maxlen: int = 2000
    lines: collections.deque[LogLine] = field(init=False)
    seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.lines = collections.deque(maxlen=self.maxlen)

    def add(self, level: str, text: str) -> None:
        with self._lock:
            self.lines.append(LogLine(dt.datetime.now(dt.timezone.utc), level, text))
            self.seq += 1

    def since(self, seq: int) -> tuple[int, list[LogLine]]:
        """Lines added after ``seq`` (at most the ring's length) and the new sequence number."""
        with self._lock:
            n = min(self.seq - seq, len(self.lines))
            return self.seq, list(self.lines)[len(self.lines) - n:] if n > 0 else []


class _ToFileAndRing:
    """Final structlog processor: one key-value line to the file handler and the ring, then drop."""

    def __init__(self, handler: logging.Handler | None, ring: LogRing) -> None:
        self._handler = handler
        self._ring = ring
        self._kv = structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"], drop_missing=True)

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> Any:
        line = str(self._kv(logger, name, dict(event_dict)))
        level = str(event_dict.get("level", name))
        if self._handler is not None:
            record = logging.LogRecord("hydra", LEVELS.get(level.upper(), logging.INFO), "", 0, line, None, None)
            self._handler.emit(record)
        shown = {k: v for k, v in event_dict.items() if k not in ("timestamp", "level", "event")}
        text = str(event_dict.get("event", "")) + "".join(f" {k}={v}" for k, v in shown.items())
        self._ring.add(level, text)
        raise structlog.DropEvent


class _RingHandler(logging.Handler):
    """Stdlib records (ib_async, APScheduler) into the ring from WARNING up: their INFO chatter
    (every portfolio update, every scheduler wake-up) stays in the file and out of the log pane."""

    def __init__(self, ring: LogRing) -> None:
        super().__init__(logging.WARNING)
        self._ring = ring

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._ring.add(record.levelname.lower(), f"{record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            pass


class _FileFormatter(logging.Formatter):
    """structlog lines arrive rendered; stdlib records get the same key-value shape."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "hydra":
            return record.getMessage()
        at = dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat()
        return f"timestamp='{at}' level='{record.levelname.lower()}' event={record.getMessage()!r} logger='{record.name}'"


@dataclass
class TuiLogging:
    """What ``configure`` set up; ``close()`` detaches the handlers and closes the file."""

    ring: LogRing
    file: Path | None
    handler: logging.Handler | None

    def close(self) -> None:
        root = logging.getLogger()
        for h in list(root.handlers):
            if h is self.handler or isinstance(h, _RingHandler):
                root.removeHandler(h)
        if self.handler is not None:
            self.handler.close()


def configure(level: str, log_file: Path | None, *, ring: LogRing | None = None,
              max_bytes: int = 10_000_000, backups: int = 5) -> TuiLogging:
    """Route structlog and stdlib logging to ``log_file`` (rotating) and a ring; nothing to stderr."""
    ring = ring or LogRing()
    handler: logging.Handler | None = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups,
                                                       encoding="utf-8")
        handler.setFormatter(_FileFormatter())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _ToFileAndRing(handler, ring),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level.upper(), logging.INFO)),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    if handler is not None:
        root.addHandler(handler)
    root.addHandler(_RingHandler(ring))
    root.setLevel(logging.INFO)
    for name in STDLIB_LOGGERS:
        logging.getLogger(name).propagate = True
    logging.lastResort = None  # type: ignore[assignment]
    return TuiLogging(ring, log_file, handler)
