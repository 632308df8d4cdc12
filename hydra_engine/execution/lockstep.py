"""Lock-step driver: steps the embedded exchange's clock event by event, only when the engine is idle.

Each step goes to the earliest of the next engine wake-up (a reprice or cancel on a patience
schedule: a sleeper on the shared clock) and the next market decision; ``exchange.advance_to``
plays every session, fill and expiry up to there; then a quiescence barrier waits until the
engine has handled all of it (a ``reqCurrentTime`` round trip, so every message the exchange sent
has been decoded, then woken tasks run until they park again or finish). At a decision time the
due markets' cycles run. Nothing depends on real time, so a run is deterministic for a seed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

import structlog

from hydra_engine.execution.runner import MAX_CYCLE_ATTEMPTS

from hydra_engine.markets import decision_at, is_trading_day, local_date, next_decision_after

log = structlog.get_logger(__name__)


class NotIdleError(TimeoutError):
    """The engine did not become idle within the settle timeout (names what was still busy)."""


@dataclass(slots=True)
class LockstepReport:
    """What ``run_days`` played."""

    days: int = 0
    steps: int = 0
    cycles: list[dict[str, Any]] = field(default_factory=list)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    data_end: dt.date | None = None
    """Set when the run stopped because the exchange's history ends on this date: a later day
    would have no bars to decide on and no session to trade in."""


class LockstepDriver:
    """Owns the stepping of a lock-step exchange; the runner still owns every cycle."""

    def __init__(self, exchange: Any, runner: Any, broker: Any, *, settle_timeout_s: float = 60.0,
                 on_day: Callable[[dt.date, list[dict[str, Any]]], Any] | None = None) -> None:
        if not getattr(exchange, "lockstep", False):
            raise ValueError("LockstepDriver needs an exchange whose clock is in lock-step mode")
        self.exchange = exchange
        self.runner = runner
        self.broker = broker
        self.clock = exchange.clock
        self.settle_timeout_s = settle_timeout_s
        self.on_day = on_day
        self._stop = asyncio.Event()
        self.days_played = 0

    def stop(self) -> None:
        """Ask ``run_days`` to end after the current step."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def next_day(self) -> tuple[dt.date, list[tuple[dt.datetime, Any]]]:
        """The next trading date with a decision after now, and its (instant, market) decisions in time order."""
        now = self.clock.now()
        day = min(local_date(m, next_decision_after(m, now)) for m in self.runner.markets)
        plan = [(decision_at(m, day), m) for m in self.runner.markets if is_trading_day(m, day)]
        return day, sorted((p for p in plan if p[0] > now), key=lambda p: (p[0], p[1].symbol))

    async def run_days(self, n: int | None, pause_s: float = 0.0) -> LockstepReport:
        """Play ``n`` decision days (None: until ``stop()``), waiting ``pause_s`` real seconds between."""
        if n is not None and n < 0:
            raise ValueError(f"days = {n}: must be 0 or more")
        report = LockstepReport(start=self.clock.now())
        await self.settle()
        data_end = getattr(getattr(self.exchange, "universe", None), "end", None)
        while (n is None or report.days < n) and not self._stop.is_set():
            day, plan = self.next_day()
            if isinstance(data_end, dt.date) and day > data_end:
                report.data_end = data_end
                log.warning("lockstep.data_ended", last_day=str(data_end), next_day=str(day), days=report.days)
                break
            summaries: list[dict[str, Any]] = []
            for at, m in plan:
                if not await self._step_to(at, report):
                    break
                summary = await self.runner.run_daily_cycle(m.symbol, trigger="lockstep", trading_date=day)
                await self.settle()
                for _ in range(MAX_CYCLE_ATTEMPTS - 1):  # skipped for a lost connection: again once reconnected
                    if not summary.get("retry") or not await self.broker.ensure_connected(timeout_s=10.0):
                        break
                    summary = await self.runner.run_daily_cycle(m.symbol, trigger="retry", trading_date=day)
                    await self.settle()
                summaries.append(summary)
            if self._stop.is_set():
                report.cycles.extend(summaries)
                break
            report.cycles.extend(summaries)
            report.days += 1
            self.days_played += 1
            log.info("lockstep.day", date=str(day), now=self.clock.now().isoformat(), steps=report.steps,
                     cycles=[(s.get("market"), s.get("status")) for s in summaries])
            if self.on_day is not None:
                self.on_day(day, summaries)
            if pause_s > 0 and (n is None or report.days < n):
                # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a racing cancel
                stop = asyncio.ensure_future(self._stop.wait())
                try:
                    await asyncio.wait({stop}, timeout=pause_s)
                finally:
                    stop.cancel()
        report.end = self.clock.now()
        return report

    async def _step_to(self, at: dt.datetime, report: LockstepReport) -> bool:
        """Advance wake-up by wake-up up to ``at`` (False when stopped on the way)."""
        while not self._stop.is_set():
            wake = self.clock.next_wakeup()
            target = at if wake is None or wake >= at else wake
            await self.exchange.advance_to(target)
            report.steps += 1
            await self.settle()
            if target >= at:
                return True
        return False

    # ----------------------------------------------------------------- quiescence

    async def _barrier(self) -> None:
        """A round trip to the exchange: every message it sent before the reply is now decoded.

        Goes through the gateway's shared barrier: ib_async keeps one ``reqCurrentTime`` future,
        so a second concurrent request (a quote snapshot's barrier) would lose its reply."""
        ib = getattr(self.broker, "ib", None)
        if ib is None or not ib.isConnected():
            return
        try:
            barrier = getattr(self.broker, "barrier", None)
            if barrier is not None:
                await barrier(10.0)
            else:
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), 10.0)
        except (asyncio.TimeoutError, ConnectionError, OSError) as exc:
            log.warning("lockstep.barrier_failed", error=repr(exc))
        except Exception as exc:  # noqa: BLE001 - NotConnected and friends: the next settle retries
            log.warning("lockstep.barrier_failed", error=repr(exc))

    def busy(self) -> str | None:
        """What still runs (None when the engine is idle)."""
        if self.runner.cycle_running:
            return f"cycle {self.runner.cycle_running}"
        om = self.runner.order_manager
        if not om.idle:
            return "order manager active"
        if self.runner.executions_busy():
            return "execution task between orders"
        pending = [t for t in getattr(om, "_tasks", ()) if not t.done()]
        if pending:
            return f"{len(pending)} fill journal task(s)"
        return None

    async def settle(self) -> None:
        """Return once the engine is idle twice in a row around a barrier (NotIdleError on timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout_s
        stable = 0
        while stable < 2:
            await self._barrier()
            for _ in range(4):
                await asyncio.sleep(0)
            what = self.busy()
            if what is None:
                stable += 1
                continue
            stable = 0
            if loop.time() > deadline:
                raise NotIdleError(f"lock-step: engine not idle after {self.settle_timeout_s:.0f} s ({what})")
            await asyncio.sleep(0.001)
