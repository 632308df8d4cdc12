"""`hydra-tui sim --port N --seed --speed --faults --state` as a real subprocess, with the real
ib_async client: faults apply, orders fill on the fixed-speed clock, SIGTERM persists, and a
second run on the same state file finds the same account."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import signal
import socket
import sys
from pathlib import Path

import pytest
from ib_async import IB, Future, MarketOrder

from hydra_engine.sim.state_file import load_state

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
IB_PORTS = {4001, 4002, 7496, 7497}


def _free_high_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 10000 and port not in IB_PORTS:
            return port


def _command() -> list[str]:
    script = Path(sys.executable).parent / "hydra-tui"
    exe = str(script) if script.exists() else shutil.which("hydra-tui")
    return [exe] if exe else [sys.executable, "-m", "hydra_tui.cli"]


class _Server:
    """One `hydra-tui sim` process; its output is drained continuously so it never blocks."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.lines: list[str] = []
        self.port: int | None = None
        self._listening = asyncio.Event()

    async def __aenter__(self) -> "_Server":
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = await asyncio.create_subprocess_exec(
            *_command(), "sim", *self.args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip
        self._drain = asyncio.create_task(self._read())
        await asyncio.wait([asyncio.create_task(self._listening.wait()), self._drain],
                                     timeout=30, return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        assert self._listening.is_set(), f"hydra-tui sim did not start: {''.join(self.lines)[-2000:]}"
        return self

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            m = re.search(r"sim_standalone_listening.*port=(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._listening.set()

    async def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(self.proc.wait(), 20)
        await asyncio.wait_for(self._drain, 5)
        return rc

    async def __aexit__(self, *exc: object) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._drain.cancel()


async def _connect(port: int) -> IB:
    ib = IB()
    ib.client.MaxRequests = 0
    await ib.connectAsync("127.0.0.1", port, clientId=5, timeout=10, raiseSyncErrors=True)
    return ib


async def test_hydra_tui_sim_serves_faults_fills_and_resumes_its_state(tmp_path, until) -> None:
    state = tmp_path / "sim.json"
    port = _free_high_port()
    common = ["--port", str(port), "--seed", "11", "--speed", "3600", "--state", str(state)]
    async with _Server(*common, "--faults", "reject@order=1") as srv:
        assert srv.port == port
        ib = await _connect(port)
        try:
            assert ib.managedAccounts() == ["DU1234567"]
            [d] = (await ib.reqContractDetailsAsync(Future("CL")))[:1]
            c = d.contract
            first = ib.placeOrder(c, MarketOrder("BUY", 1))
            await until(lambda: first.isDone(), what="injected reject")
            assert any(e.errorCode == 201 for e in first.log)
            trade = ib.placeOrder(c, MarketOrder("BUY", 2, orderRef="standalone"))
            await until(lambda: trade.isDone(), timeout=20, what="fill on the fixed-speed clock")
            assert trade.orderStatus.status == "Filled"
            fill_time = trade.fills[-1].execution.time
        finally:
            ib.disconnect()
        assert await srv.terminate() == 0
    saved = load_state(state)
    assert saved is not None and dt.datetime.fromisoformat(saved["clock"]) >= fill_time

    async with _Server(*common) as again:  # same state file, no faults
        ib = await _connect(port)
        try:
            [pos] = await ib.reqPositionsAsync()
            assert (pos.contract.conId, pos.position) == (c.conId, 2)
            assert (await ib.reqCurrentTimeAsync()) >= fill_time  # the clock resumed, not restarted
            summary = {v.tag: float(v.value) for v in await ib.accountSummaryAsync() if v.tag == "TotalCashValue"}
            assert summary["TotalCashValue"] < 1_000_000.0  # the commissions stayed paid
        finally:
            ib.disconnect()
        assert await again.terminate() == 0


async def test_hydra_tui_sim_refuses_a_bad_fault_spec_with_a_clear_line(tmp_path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_command(), "sim", "--port", str(_free_high_port()), "--faults", "explode@order=1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"kind 'explode'" in out
