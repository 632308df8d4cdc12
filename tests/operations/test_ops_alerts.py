"""Alerts through real channels: a webhook received by a loopback HTTP server, a command (a real
subprocess) that records its stdin, the rate limit, failures, and every outcome in a real store's
ops journal. The rules that turn engine events into alerts are checked one by one."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import pytest
from ops_helpers import read_lines, recording_command

from hydra_engine.events import (
    AgentDecision,
    AlertRaised,
    BreakerChanged,
    BrokerDownBeforeDecision,
    BrokerOutage,
    CycleFinished,
    EventBus,
    StaleLockFound,
)
from hydra_engine.operations.alert_kinds import AlertKind, AlertOutcome, Severity
from hydra_engine.operations.alert_rules import STOPPING_ERROR, AlertRouter, alert_for
from hydra_engine.operations.alert_sinks import CommandSink, WebhookSink, alert_env
from hydra_engine.operations.alerts import Alert, Alerter, RateLimiter, alert_context
from hydra_engine.store.ops_journal import OpsKind

T0 = dt.datetime(2026, 3, 2, 20, 0, tzinfo=dt.timezone.utc)


def an_alert(kind: AlertKind = AlertKind.CYCLE_FAILED, message: str = "cycle CL 2026-03-02 failed: boom") -> Alert:
    return Alert(kind, Severity.WARNING, message, T0, {"market": "CL"})


async def alert_rows(store) -> list:
    return list(reversed(await store.ops.recent(100, kind=OpsKind.ALERT)))


async def test_webhook_receives_the_alert_json_and_the_journal_says_delivered(store, webhook) -> None:
    alerter = Alerter([WebhookSink(webhook.url, timeout_s=5)], store.ops, min_interval_s=60,
                      context=alert_context(account="DU7654321", mode="SIM", store=str(store.directory)))
    record = await alerter.raise_alert(an_alert())
    assert record.outcome is AlertOutcome.DELIVERED
    assert len(webhook.bodies) == 1
    body = webhook.bodies[0]
    assert body["kind"] == "cycle_failed" and body["severity"] == "warning"
    assert body["message"] == "cycle CL 2026-03-02 failed: boom" and body["detail"] == {"market": "CL"}
    assert body["account"] == "DU7654321" and body["mode"] == "SIM" and body["at"] == T0.isoformat()
    assert webhook.paths == ["/hook?token=secret-token"]
    rows = await alert_rows(store)
    assert len(rows) == 1 and rows[0].command == "cycle_failed" and rows[0].actor == "alerts"
    assert rows[0].detail["outcome"] == "DELIVERED" and rows[0].detail["channels"] == ["webhook"]
    assert "secret-token" not in str(rows[0].detail)


async def test_command_gets_the_json_on_stdin_and_the_kind_in_its_environment(store, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    alerter = Alerter([CommandSink(recording_command(out), timeout_s=20)], store.ops, min_interval_s=0)
    record = await alerter.raise_alert(an_alert(AlertKind.STALE_LOCK, "stale store lock"))
    assert record.outcome is AlertOutcome.DELIVERED, record.errors
    lines = read_lines(out)
    assert len(lines) == 1
    assert lines[0]["kind"] == "stale_lock" and lines[0]["message"] == "stale store lock"
    assert lines[0]["stdin"]["kind"] == "stale_lock" and lines[0]["stdin"]["detail"] == {"market": "CL"}
    assert alert_env({"kind": "x", "message": "m"})["HYDRA_ALERT_KIND"] == "x"


async def test_a_burst_gives_one_delivery_and_journalled_suppressions(store, webhook) -> None:
    bus = EventBus()
    raised = bus.subscribe(types=(AlertRaised,))
    alerter = Alerter([WebhookSink(webhook.url)], store.ops, min_interval_s=3600, bus=bus)
    tasks = [alerter.raise_alert(an_alert(message=f"failure {i}")) for i in range(6)]
    other = alerter.raise_alert(an_alert(AlertKind.BREAKER_TRIPPED, "breaker drawdown tripped"))
    outcomes = [(await t).outcome for t in tasks]
    assert outcomes == [AlertOutcome.DELIVERED] + [AlertOutcome.SUPPRESSED] * 5
    assert (await other).outcome is AlertOutcome.DELIVERED  # the limit is per kind
    assert sorted(b["message"] for b in webhook.bodies) == ["breaker drawdown tripped", "failure 0"]
    rows = await alert_rows(store)
    journalled = sorted((r.message, r.detail["outcome"]) for r in rows if r.command == "cycle_failed")
    assert journalled == [("failure 0", "DELIVERED")] + [(f"failure {i}", "SUPPRESSED") for i in range(1, 6)]
    assert len([e for e in iter(raised.get_nowait, None)]) == 7


def test_rate_limiter_counts_suppressed_alerts_for_the_next_delivery() -> None:
    now = [0.0]
    limiter = RateLimiter(10.0, now=lambda: now[0])
    assert limiter.allow("k") == (True, 0)
    now[0] = 5.0
    assert limiter.allow("k") == (False, 0)
    assert limiter.allow("k") == (False, 0)
    now[0] = 10.5
    assert limiter.allow("k") == (True, 2)
    with pytest.raises(ValueError, match="min_interval_s"):
        RateLimiter(-1)


async def test_failures_are_journalled_with_each_channels_error(store, webhook, tmp_path: Path) -> None:
    webhook.status = 500
    failing = CommandSink([sys.executable, "-c", "import sys; sys.stderr.write('no route to pager'); sys.exit(3)"])
    missing = CommandSink([str(tmp_path / "no-such-program")])
    alerter = Alerter([WebhookSink(webhook.url), failing, missing], store.ops, min_interval_s=0)
    record = await alerter.raise_alert(an_alert())
    assert record.outcome is AlertOutcome.FAILED
    assert "HTTP 500" in record.errors["webhook"] and "secret-token" not in record.errors["webhook"]
    assert "exited with 3: no route to pager" in record.errors["command"] or "cannot run" in record.errors["command"]
    rows = await alert_rows(store)
    assert rows[-1].detail["outcome"] == "FAILED" and rows[-1].detail["errors"] == record.errors


async def test_a_hung_command_is_killed_at_its_timeout(store) -> None:
    sink = CommandSink([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=0.5)
    alerter = Alerter([sink], store.ops, min_interval_s=0)
    started = time.monotonic()
    record = await alerter.raise_alert(an_alert())
    assert time.monotonic() - started < 10
    assert record.outcome is AlertOutcome.FAILED and "did not finish within 0.5 s" in record.errors["command"]


async def test_an_unreachable_webhook_fails_within_its_timeout(store) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    alerter = Alerter([WebhookSink(f"http://127.0.0.1:{port}/x", timeout_s=2)], store.ops, min_interval_s=0)
    record = await alerter.raise_alert(an_alert())
    assert record.outcome is AlertOutcome.FAILED and "unreachable" in record.errors["webhook"]


async def test_without_a_channel_the_alert_is_still_journalled_and_a_disabled_kind_is_ignored(store) -> None:
    alerter = Alerter([], store.ops, min_interval_s=0, kinds=["cycle_failed"])
    record = await alerter.raise_alert(an_alert())
    assert record.outcome is AlertOutcome.NO_CHANNEL
    assert alerter.raise_alert(an_alert(AlertKind.CYCLE_SKIPPED)) is None
    rows = await alert_rows(store)
    assert [(r.command, r.detail["outcome"]) for r in rows] == [("cycle_failed", "NO_CHANNEL")]


# ------------------------------------------------------------------------------ rules


def test_breaker_alert_only_when_it_trips() -> None:
    tripped = alert_for(BreakerChanged(at=T0, breaker="drawdown", tripped=True, trading_state="REDUCING",
                                       reason="12% below peak", phase="TRIGGERED"))
    assert tripped is not None and tripped.kind is AlertKind.BREAKER_TRIPPED and tripped.severity is Severity.CRITICAL
    assert "drawdown" in tripped.message and "REDUCING" in tripped.message
    assert alert_for(BreakerChanged(at=T0, breaker="drawdown", tripped=True, trading_state="REDUCING",
                                    phase="COOLDOWN")) is None
    assert alert_for(BreakerChanged(at=T0, breaker="drawdown", tripped=False, trading_state="ACTIVE",
                                    phase="ACTIVE")) is None


def test_cycle_alerts_for_failed_and_skipped_but_not_for_a_clean_stop() -> None:
    day = dt.date(2026, 3, 2)
    failed = alert_for(CycleFinished(at=T0, market="CL", trading_date=day, outcome="FAILED",
                                     summary={"error": "KeyError: 'close'", "trigger": "schedule"}))
    assert failed is not None and failed.kind is AlertKind.CYCLE_FAILED and "KeyError" in failed.message
    skipped = alert_for(CycleFinished(at=T0, market="ZO", trading_date=day, outcome="SKIPPED",
                                      summary={"skipped": "broker not connected"}))
    assert skipped is not None and skipped.kind is AlertKind.CYCLE_SKIPPED and "broker not connected" in skipped.message
    assert alert_for(CycleFinished(at=T0, market="CL", trading_date=day, outcome="FAILED",
                                   summary={"error": STOPPING_ERROR})) is None
    assert alert_for(CycleFinished(at=T0, market="CL", trading_date=day, outcome="FINISHED")) is None


@pytest.mark.parametrize("decision, kind", [
    ("awaiting_approval", AlertKind.APPROVAL_NEEDED), ("rolled_back", AlertKind.ROLLBACK),
    ("rollback_recommended", AlertKind.ROLLBACK), ("derisked", AlertKind.DERISK),
    ("derisk_recommended", AlertKind.DERISK), ("promoted", None),
])
def test_agent_decisions(decision: str, kind: AlertKind | None) -> None:
    a = alert_for(AgentDecision(at=T0, market="CL", decision=decision, version="v0007-abc", summary="text"))
    assert (a.kind if a else None) is kind
    if kind is AlertKind.APPROVAL_NEEDED:
        assert "hydra-tui approve --market CL" in a.message


def test_broker_and_lock_alerts() -> None:
    out = alert_for(BrokerOutage(at=T0, down_s=660.0))
    back = alert_for(BrokerOutage(at=T0, down_s=900.0, ended=True))
    due = alert_for(BrokerDownBeforeDecision(at=T0, market="ZO", decision_at=T0, minutes_before=9.5))
    lock = alert_for(StaleLockFound(at=T0, path="/x/hydra.lock", pid=4242))
    assert out.kind is AlertKind.DISCONNECTED and "11.0 min" in out.message
    assert back.kind is AlertKind.RECONNECTED and back.severity is Severity.INFO
    assert due.kind is AlertKind.BROKER_DOWN_BEFORE_DECISION and "ZO" in due.message
    assert lock.kind is AlertKind.STALE_LOCK and "4242" in lock.message


async def test_router_turns_bus_events_into_alerts(store) -> None:
    bus = EventBus()
    raised = bus.subscribe(types=(AlertRaised,))
    seen = []
    alerter = Alerter([], store.ops, min_interval_s=0, bus=bus)
    router = AlertRouter(bus, alerter, on_event=seen.append)
    router.start()
    bus.publish(CycleFinished(at=T0, market="CL", trading_date=T0.date(), outcome="SKIPPED", summary={"skipped": "x"}))
    bus.publish(CycleFinished(at=T0, market="CL", trading_date=T0.date(), outcome="FINISHED"))
    event = await raised.get()
    assert event.kind == "cycle_skipped" and event.outcome == "NO_CHANNEL"
    await router.stop()
    await alerter.stop()
    assert len(seen) == 2  # the hook sees every watched event, alert or not
