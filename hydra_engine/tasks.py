"""One place that reports a background task's failure: a task nobody awaits must not fail silently."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def log_task_failure(task: asyncio.Task[Any]) -> None:
    """Done-callback for tracked tasks: log the exception of a task that failed (not one cancelled)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("engine.task_failed", task=task.get_name(), error=f"{type(exc).__name__}: {exc}")
