"""Persistence: a new exchange on the same state file resumes account, positions, orders, clock;
and the standalone server as a real subprocess."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from ib_async import Future, LimitOrder, MarketOrder

from hydra_engine.sim import EmbeddedExchange, StateFileError
from hydra_engine.sim.state_file import load_state, save_state

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]


async def test_state_resumed_by_a_new_exchange(make_exchange, ib_client, until, tmp_path) -> None:
    path = tmp_path / "sim-state.json"
    a = await make_exchange(state_path=path)
    ib = await ib_client(client_id=9, ex=a)
    [d] = (await ib.reqContractDetailsAsync(Future("CL")))[:1]
    c = d.contract
    filled = ib.placeOrder(c, MarketOrder("SELL", 3, orderRef="keep-short"))
    working = ib.placeOrder(c, LimitOrder("BUY", 1, 20.0, tif="GTC", orderRef="keep-working"))
    await until(lambda: working.orderStatus.status == "Submitted" and filled.orderStatus.status == "Submitted")
    later = a.clock.now() + dt.timedelta(minutes=20)
    await a.advance_to(later)
    await until(lambda: filled.isDone(), what="fill")
    cash = a.account_values()["TotalCashValue"]
    execs = [e.exec_id for e in a.executions_today()]
    ib.disconnect()
    await a.stop()
    saved = json.loads(path.read_text())
    assert saved["clock"] == later.isoformat()

    b = await make_exchange(state_path=path)
    assert b.clock.now() == later
    assert b.positions()[c.conId].qty == -3
    assert b.account_values()["TotalCashValue"] == pytest.approx(cash)
    assert [o.order_ref for o in b.open_orders()] == ["keep-working"]
    assert [e.exec_id for e in b.executions_today()] == execs
    ib2 = await ib_client(client_id=9, ex=b)
    assert [t.order.orderRef for t in ib2.openTrades()] == ["keep-working"]
    assert [(p.contract.conId, p.position) for p in ib2.positions()] == [(c.conId, -3)]
    assert {f.execution.execId for f in ib2.fills()} == set(execs)
    # new ids never collide with the resumed ones
    again = ib2.placeOrder(c, LimitOrder("BUY", 1, 20.0, tif="GTC"))
    await until(lambda: again.orderStatus.status == "Submitted")
    assert again.order.orderId > working.order.orderId
    assert again.order.permId not in {working.order.permId, filled.order.permId}


def test_state_file_is_atomic_and_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "s.json"
    state = {"clock": "2018-01-02T12:00:00+00:00", "accounts": [], "orders": [], "executions": [], "counters": {}}
    save_state(path, state)
    assert load_state(path)["clock"] == state["clock"]
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp file left behind
    path.write_text('{"version": 1, "clock": ')
    with pytest.raises(StateFileError, match=r"s\.json: line 1"):
        load_state(path)
    path.write_text('{"version": 99}')
    with pytest.raises(StateFileError, match="version 99"):
        load_state(path)
    assert load_state(tmp_path / "missing.json") is None


async def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        await EmbeddedExchange.start(host="0.0.0.0")


async def test_standalone_subprocess_serves_until_sigterm(tmp_path, ib_client) -> None:
    state = tmp_path / "standalone.json"
    code = ("import argparse, asyncio, sys\n"
            "from hydra_engine.sim.standalone import add_arguments, run\n"
            "p = argparse.ArgumentParser(); add_arguments(p)\n"
            "sys.exit(asyncio.run(run(p.parse_args(sys.argv[1:]))))\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--port", "0", "--speed", "60", "--state", str(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )
    try:
        port = None
        lines = []
        while port is None:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, f"standalone exited early: {b''.join(lines)!r}"
            lines.append(line)
            m = re.search(rb"sim_standalone_listening.*port=(\d+)", line)
            if m:
                port = int(m.group(1))
        from ib_async import IB

        ib = IB()
        ib.client.MaxRequests = 0
        await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=5, raiseSyncErrors=True)
        t1 = await ib.reqCurrentTimeAsync()
        assert ib.managedAccounts() == ["DU1234567"]
        ib.disconnect()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        saved = load_state(state)
        assert saved is not None and dt.datetime.fromisoformat(saved["clock"]) >= t1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_standalone_rejects_a_bad_fault_spec(tmp_path) -> None:
    import argparse

    from hydra_engine.sim.standalone import add_arguments, run

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert await run(p.parse_args(["--port", "0", "--faults", "explode@order=1"])) == 2
