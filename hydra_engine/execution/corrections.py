"""Execution corrections: IB re-sends a fill under a new execId (the last group one higher).

The broker layer recognises the correction and never hands it on as a second fill. Here it is
journalled: the same fill again is a note; a correction that changes the contract, side, quantity,
price or order of a journalled fill raises the conflicting-fill alarm, so the market's trading
waits until an operator has checked it against the broker and cleared it.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import structlog

from hydra_engine.tasks import log_task_failure

if TYPE_CHECKING:
    from hydra_engine.broker.records import ExecutionReport

log = structlog.get_logger(__name__)

COMPARED = ("con_id", "local_symbol", "side", "qty", "price", "order_ref")


class CorrectionJournal:
    """``on_correction`` is the gateway's correction listener; writes go through the store."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._tasks: set[asyncio.Task[None]] = set()

    def on_correction(self, original: ExecutionReport, correction: ExecutionReport) -> None:
        task = asyncio.get_running_loop().create_task(self._journal(original, correction),
                                                      name=f"correction-{correction.exec_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_task_failure)

    async def _journal(self, original: ExecutionReport, correction: ExecutionReport) -> None:
        changed = [f for f in COMPARED if getattr(original, f) != getattr(correction, f)]
        detail = {"original": original.exec_id, "correction": correction.exec_id, "order_ref": original.order_ref}
        if not changed:
            await self._store.ops.record("NOTE", f"{original.local_symbol}: execution {original.exec_id} corrected as "
                                         f"{correction.exec_id}; the same fill, journalled once", actor="broker",
                                         detail=detail)
            return
        await self._store.fill_conflicts.record_correction(asdict(original), asdict(correction), changed)

    async def drain(self) -> None:
        """Wait for the corrections reported so far to be journalled (engine stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
