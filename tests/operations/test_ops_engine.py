"""Operations wired into a real Engine on the embedded exchange (real ib_async client over loopback,
real store): the heartbeat file, a tripped breaker delivered to a loopback webhook, an outage of the
exchange delivered and its end, a stale lock left by a SIGKILLed process, and a clean stop that
raises nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ops_helpers import read_lines, recording_command

from hydra_engine.config import load_settings
from hydra_engine.engine import Engine
from hydra_engine.events import AlertRaised
from hydra_engine.operations.heartbeat import heartbeat_verdict, read_heartbeat
from hydra_engine.paths import LOCK_FILE_NAME, store_dir
from hydra_engine.risk.intents import AccountState
from hydra_engine.store.ops_journal import OpsKind


def engine(tmp_path: Path, universe: Any, **overrides: Any) -> Engine:
    return Engine(load_settings(None, overrides), data_dir=tmp_path, universe=universe, agent=False)


async def wait_for(cond, timeout: float = 20.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)


async def test_heartbeat_file_is_rewritten_and_says_stopped_at_the_end(tmp_path: Path, sim_universe: Any) -> None:
    eng = engine(tmp_path, sim_universe, **{"heartbeat.interval_s": 0.1})
    await eng.start()
    path = eng.store.directory / "heartbeat.json"
    try:
        first = read_heartbeat(path)
        assert first is not None and first["state"] == "running" and first["pid"] == os.getpid()
        assert first["mode"] == "SIM" and first["account"] == eng.account and first["last_cycle"] is None
        await eng.run_days(1)
        await wait_for(lambda: (read_heartbeat(path) or {}).get("cycles_run") == 2, 10, "a heartbeat after the day")
        beat = read_heartbeat(path)
        assert beat["written_at"] > first["written_at"] and beat["last_cycle"]["status"] == "FINISHED"
        assert beat["engine_time"] == eng.clock.now().isoformat() and beat["connected"] is True
        assert heartbeat_verdict(beat) == "alive"
        later = dt.datetime.fromisoformat(beat["written_at"]) + dt.timedelta(seconds=10)
        assert heartbeat_verdict(beat, later) == "stale"  # 10 s without a beat at a 0.1 s interval
        assert not list(path.parent.glob(".heartbeat.json.tmp"))  # written through a rename
    finally:
        await eng.stop()
    last = read_heartbeat(path)
    assert last["state"] == "stopped" and heartbeat_verdict(last) == "stopped"
    assert heartbeat_verdict(None) == "missing"


async def test_a_tripped_breaker_reaches_the_webhook(tmp_path: Path, sim_universe: Any, webhook) -> None:
    eng = engine(tmp_path, sim_universe, **{"alerts.webhook": webhook.url})
    await eng.start()
    try:
        raised = eng.bus.subscribe(types=(AlertRaised,))
        eng.risk_gate.evaluate_account(AccountState(daily_pnl=-30_000.0, current_equity=970_000.0,
                                                    peak_equity=1_000_000.0))
        event = await asyncio.wait_for(raised.get(), 10)
        assert event.kind == "breaker_tripped" and event.outcome == "DELIVERED"
        body = webhook.bodies[0]
        assert body["kind"] == "breaker_tripped" and body["detail"]["breaker"] == "daily_loss"
        assert body["detail"]["trading_state"] == "HALTED" and body["mode"] == "SIM"
        rows = await eng.store.ops.recent(20, kind=OpsKind.ALERT)
        assert [(r.command, r.detail["outcome"]) for r in rows] == [("breaker_tripped", "DELIVERED")]
    finally:
        await eng.stop()


async def test_an_exchange_outage_is_alerted_and_so_is_its_end(tmp_path: Path, sim_universe: Any, webhook) -> None:
    eng = engine(tmp_path, sim_universe, **{"alerts.webhook": webhook.url, "alerts.disconnect_after_min": 0.01,
                                             "alerts.down_before_decision_min": 0})
    await eng.start()
    try:
        restart = asyncio.ensure_future(eng.exchange.restart(2.0))  # sockets closed, refused for 2 s
        await wait_for(lambda: any(b["kind"] == "disconnected" for b in webhook.bodies), 15, "disconnected alert")
        await restart
        await wait_for(lambda: any(b["kind"] == "reconnected" for b in webhook.bodies), 30, "reconnected alert")
        kinds = [b["kind"] for b in webhook.bodies]
        assert kinds == ["disconnected", "reconnected"]
        assert webhook.bodies[0]["severity"] == "critical" and webhook.bodies[0]["detail"]["down_s"] >= 0.6
    finally:
        await eng.stop()
    assert [b["kind"] for b in webhook.bodies] == ["disconnected", "reconnected"]  # the stop raised nothing


async def test_a_lock_left_by_a_killed_process_is_alerted_at_start(tmp_path: Path, sim_universe: Any) -> None:
    lock = store_dir(tmp_path, "sim", "DU1234567") / LOCK_FILE_NAME
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hydra_engine.store.lock import StoreLock; "
         f"StoreLock.acquire({str(lock)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    out = tmp_path / "alerts.jsonl"
    eng = engine(tmp_path, sim_universe, **{"alerts.command": recording_command(out)})
    await eng.start()
    try:
        await wait_for(lambda: bool(read_lines(out)), 20, "stale lock alert")
        (line,) = read_lines(out)
        assert line["kind"] == "stale_lock" and line["stdin"]["detail"]["pid"] == holder.pid
        assert str(holder.pid) in line["message"]
    finally:
        await eng.stop()
    # a clean stop releases the lock: the next start finds nothing stale
    eng2 = engine(tmp_path, sim_universe, **{"alerts.command": recording_command(out)})
    await eng2.start()
    try:
        await eng2.operations.alerter.drain(5)
        rows = await eng2.store.ops.recent(50, kind=OpsKind.ALERT)
        assert [json.dumps(r.detail["outcome"]) for r in rows] == ['"DELIVERED"']  # only the first start's
    finally:
        await eng2.stop()
