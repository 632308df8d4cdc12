"""BrokerWatch: an outage is published once, after ``disconnect_after`` wall seconds outside the
gateway's restart window (counted from the window's end when it outlasts it), its end is published,
and a broker down shortly before a decision is published once per decision. The broker link is a
tiny in-memory part (the ``BrokerLink`` seam); clocks are a ManualClock and a hand-moved monotonic."""

from __future__ import annotations

import datetime as dt

from hydra_engine.clock import ManualClock
from hydra_engine.events import BrokerDownBeforeDecision, BrokerOutage, EventBus
from hydra_engine.markets import CATALOG
from hydra_engine.operations.broker_watch import BrokerWatch
from hydra_engine.operations.restart_window import RestartWindow

UTC = dt.timezone.utc


class Link:
    def __init__(self) -> None:
        self.is_connected = True


def make(start: dt.datetime, *, window: RestartWindow | None, lead_s: float = 0.0):
    link, clock, bus, mono = Link(), ManualClock(start), EventBus(), [0.0]
    sub = bus.subscribe(types=(BrokerOutage, BrokerDownBeforeDecision))
    watch = BrokerWatch(link, clock, bus, [CATALOG["ZO"]], window=window, disconnect_after_s=600,
                        down_before_decision_s=lead_s, monotonic=lambda: mono[0])
    return link, clock, sub, mono, watch


def drain(sub) -> list:
    return list(iter(sub.get_nowait, None))


def test_an_outage_outside_the_window_is_published_once_then_its_end() -> None:
    link, clock, sub, mono, watch = make(dt.datetime(2026, 3, 3, 15, 0, tzinfo=UTC), window=None)
    watch.check()
    link.is_connected = False
    watch.check()
    mono[0] = 599.0
    watch.check()
    assert drain(sub) == []
    mono[0] = 601.0
    watch.check()
    mono[0] = 900.0
    watch.check()
    (out,) = drain(sub)
    assert isinstance(out, BrokerOutage) and not out.ended and out.down_s == 601.0
    link.is_connected = True
    mono[0] = 960.0
    watch.check()
    (back,) = drain(sub)
    assert back.ended and back.down_s == 960.0
    link.is_connected = False  # a short blip afterwards raises nothing
    watch.check()
    mono[0] = 1000.0
    link.is_connected = True
    watch.check()
    assert drain(sub) == []


def test_the_restart_window_is_no_outage_and_time_counts_from_its_end() -> None:
    window = RestartWindow.parse("23:45-00:05", "America/New_York")
    link, clock, sub, mono, watch = make(dt.datetime(2026, 3, 4, 4, 46, tzinfo=UTC), window=window)  # 23:46 EST
    link.is_connected = False
    for minute in range(19):  # down through the whole window: 19 minutes, nothing raised
        clock.set(dt.datetime(2026, 3, 4, 4, 46, tzinfo=UTC) + dt.timedelta(minutes=minute))
        mono[0] = minute * 60.0
        watch.check()
    assert drain(sub) == []
    clock.set(dt.datetime(2026, 3, 4, 5, 5, tzinfo=UTC))  # window over, still down
    mono[0] = 19 * 60.0
    watch.check()
    clock.set(dt.datetime(2026, 3, 4, 5, 14, tzinfo=UTC))
    mono[0] = 28 * 60.0
    watch.check()
    assert drain(sub) == []  # 9 minutes outside the window so far
    clock.set(dt.datetime(2026, 3, 4, 5, 15, tzinfo=UTC))
    mono[0] = 29 * 60.0
    watch.check()
    (out,) = drain(sub)
    assert isinstance(out, BrokerOutage) and out.down_s == 29 * 60.0 and "restart window" in out.detail


def test_down_before_a_decision_is_published_once_per_decision() -> None:
    # ZO decides at 14:00 Chicago = 20:00 UTC in winter
    link, clock, sub, mono, watch = make(dt.datetime(2026, 3, 3, 19, 45, tzinfo=UTC), window=None, lead_s=600)
    link.is_connected = False
    watch.check()
    assert drain(sub) == []  # 15 minutes ahead: not yet
    clock.set(dt.datetime(2026, 3, 3, 19, 51, tzinfo=UTC))
    watch.check()
    watch.check()
    (due,) = drain(sub)
    assert isinstance(due, BrokerDownBeforeDecision) and due.market == "ZO"
    assert due.decision_at == dt.datetime(2026, 3, 3, 20, 0, tzinfo=UTC) and 8.9 < due.minutes_before < 9.1
    link.is_connected = True
    clock.set(dt.datetime(2026, 3, 3, 19, 55, tzinfo=UTC))
    watch.check()
    assert drain(sub) == []


def test_a_decision_inside_the_window_is_due_at_its_end() -> None:
    window = RestartWindow.parse("13:55-14:10", "America/Chicago")
    link, clock, sub, mono, watch = make(dt.datetime(2026, 3, 3, 19, 50, tzinfo=UTC), window=window, lead_s=600)
    link.is_connected = False
    watch.check()  # 13:50 CST: the decision runs at 14:10, 20 minutes away
    assert drain(sub) == []
    clock.set(dt.datetime(2026, 3, 3, 20, 0, tzinfo=UTC))  # inside the window: the restart, no warning
    watch.check()
    assert drain(sub) == []
    clock.set(dt.datetime(2026, 3, 3, 20, 10, tzinfo=UTC))  # the window ended and the broker is still down
    watch.check()
    assert [type(e) for e in drain(sub)] == [BrokerDownBeforeDecision]
