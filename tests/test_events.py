"""EventBus: fan-out, drop-oldest for a slow subscriber, close semantics, thread publishing."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, datetime, timezone

import pytest

from hydra_engine.events import (
    AgentPhaseChanged,
    CycleFinished,
    CycleStarted,
    EngineEvent,
    EventBus,
    LogEvent,
)

T0 = datetime(2026, 3, 2, 20, 0, tzinfo=timezone.utc)


def phase(i: int) -> AgentPhaseChanged:
    return AgentPhaseChanged(at=T0, phase=f"P{i}")


def test_events_are_frozen_keyword_records() -> None:
    e = CycleStarted(at=T0, market="CL", trading_date=date(2026, 3, 2))
    assert isinstance(e, EngineEvent) and e.trigger == "schedule"
    with pytest.raises(AttributeError):
        e.market = "ZO"  # type: ignore[misc]
    with pytest.raises(TypeError):
        CycleStarted(T0, "CL", date(2026, 3, 2))  # type: ignore[misc]


async def test_fan_out_to_every_subscriber() -> None:
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    for i in range(3):
        bus.publish(phase(i))
    assert [(await a.get()).phase for _ in range(3)] == ["P0", "P1", "P2"]  # type: ignore[attr-defined]
    assert [(await b.get()).phase for _ in range(3)] == ["P0", "P1", "P2"]  # type: ignore[attr-defined]
    assert bus.published == 3 and a.dropped == 0


async def test_slow_subscriber_drops_oldest_and_counts() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=5)
    fast = bus.subscribe(maxsize=1000)
    for i in range(12):
        bus.publish(phase(i))  # never blocks, whoever is slow
    assert slow.dropped == 7 and len(slow) == 5
    assert [slow.get_nowait().phase for _ in range(5)] == ["P7", "P8", "P9", "P10", "P11"]  # type: ignore[union-attr]
    assert slow.get_nowait() is None
    assert fast.dropped == 0 and len(fast) == 12
    assert bus.drop_counts()[id(slow)] == 7


async def test_type_filter_and_async_iteration_until_close() -> None:
    bus = EventBus()
    sub = bus.subscribe(types=(CycleStarted, CycleFinished))
    got: list[str] = []

    async def consume() -> None:
        async for e in sub:
            got.append(type(e).__name__)

    task = asyncio.create_task(consume())
    bus.publish(LogEvent(at=T0, level="info", event="ignored"))
    bus.publish(CycleStarted(at=T0, market="CL", trading_date=date(2026, 3, 2)))
    bus.publish(CycleFinished(at=T0, market="CL", trading_date=date(2026, 3, 2), outcome="FINISHED"))
    sub.close()
    await asyncio.wait_for(task, 5)
    assert got == ["CycleStarted", "CycleFinished"]  # buffered events delivered, then the end
    assert bus.subscribers == 0
    bus.publish(phase(1))  # publishing with no subscribers is fine
    with pytest.raises(TypeError):
        bus.publish("not an event")  # type: ignore[arg-type]


async def test_waiting_subscriber_wakes_on_publish_and_bus_close() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.publish(phase(1))
    assert (await asyncio.wait_for(waiter, 5)).phase == "P1"  # type: ignore[attr-defined]
    ender = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(ender, 5)
    assert sub.closed


async def test_publish_from_another_thread_is_forwarded_to_the_loop() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    thread = threading.Thread(target=lambda: [bus.publish(phase(i)) for i in range(3)])
    thread.start()
    thread.join(5)
    got = [await asyncio.wait_for(sub.get(), 5) for _ in range(3)]
    assert [e.phase for e in got] == ["P0", "P1", "P2"]  # type: ignore[attr-defined]


def test_bad_maxsize() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        EventBus().subscribe(maxsize=0)


async def test_log_processor_mirrors_structlog_entries() -> None:
    import structlog

    from hydra_engine.clock import ManualClock
    from hydra_engine.events import LogToBus

    bus = EventBus()
    sub = bus.subscribe(types=(LogEvent,))
    clock = ManualClock(T0)
    log = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[structlog.processors.add_log_level, LogToBus(bus, clock, min_level="info")],
    )
    log.debug("too_chatty", x=1)
    log.warning("order_rejected", order_ref="H1", code=201)
    e = sub.get_nowait()
    assert isinstance(e, LogEvent) and e.event == "order_rejected" and e.level == "warning"
    assert e.fields == {"order_ref": "H1", "code": 201} and e.at == T0
    assert sub.get_nowait() is None  # the debug entry was below min_level
    with pytest.raises(ValueError, match="min_level"):
        LogToBus(bus, min_level="loud")


async def test_one_consumer_per_subscription() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    first = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one consumer"):
        await sub.get()
    bus.publish(phase(5))
    assert (await asyncio.wait_for(first, 5)).phase == "P5"  # type: ignore[attr-defined]
