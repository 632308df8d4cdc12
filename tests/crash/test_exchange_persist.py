"""Defect 1 of issue 13: the exchange must persist a fill before it tells a client about it.

The standalone exchange (``hydra-tui sim --state FILE``) runs in a real subprocess; a real ib_async
client places a market order and the exchange is SIGKILLed the moment the execution reaches the
client. Restarted on the same state file, the exchange must still know that fill: the position,
the execution (same execId) and the order as filled, and it must never hand the same execId to a
new fill."""

from __future__ import annotations

import asyncio

import pytest
from crash_procs import Child
from ib_async import IB, ExecutionFilter, Future, MarketOrder

pytestmark = pytest.mark.timeout(90)


async def _connect(port: int, client_id: int = 5) -> IB:
    ib = IB()
    ib.client.MaxRequests = 0
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=10, raiseSyncErrors=True)
    return ib


async def _sim(state: str) -> tuple[Child, int]:
    child = await Child("sim", "--port", "0", "--seed", "11", "--speed", "600", "--state", state).start()
    m = await child.wait_for(r"sim_standalone_listening.*port=(\d+)")
    assert m is not None, child.output()[-2000:]
    return child, int(m.group(1))


async def test_a_fill_the_client_saw_survives_a_sigkill_of_the_exchange(tmp_path, until) -> None:
    state = str(tmp_path / "exchange.json")
    seen: list[str] = []
    for round_ in range(3):  # three kills, each right at a fill
        child, port = await _sim(state)
        ib = await _connect(port)
        try:
            [d] = (await ib.reqContractDetailsAsync(Future("CL")))[:1]
            contract = d.contract

            def on_exec(_trade, fill, child=child) -> None:
                child.sigkill()  # the instant the client sees the execution
                seen.append(fill.execution.execId)

            ib.execDetailsEvent += on_exec
            ib.placeOrder(contract, MarketOrder("BUY", 1, orderRef=f"crash-{round_}"))
            await until(lambda n=round_ + 1: len(seen) >= n, timeout=30, what="the fill")
            assert await child.wait(20) == -9
        finally:
            ib.disconnect()

    child, port = await _sim(state)
    ib = await _connect(port, client_id=6)
    try:
        positions = {p.contract.conId: p.position for p in await ib.reqPositionsAsync()}
        assert positions == {contract.conId: 3.0}, f"fills the client saw were lost: {positions}"
        ids = [f.execution.execId for f in await ib.reqExecutionsAsync(ExecutionFilter())]
        for exec_id in seen:  # those of the exchange's current day at least must be listed
            if ids and exec_id.split(".")[0] == ids[0].split(".")[0]:
                assert exec_id in ids
        assert not [t for t in await ib.reqAllOpenOrdersAsync() if t.order.orderRef.startswith("crash-")]
        trade = ib.placeOrder(contract, MarketOrder("BUY", 1, orderRef="after"))
        await until(lambda: trade.orderStatus.status == "Filled", timeout=30, what="a fill after restart")
        await asyncio.sleep(0.2)
        new_id = trade.fills[-1].execution.execId
        assert new_id not in seen, f"execId {new_id} was already handed out before the crash"
        assert len(set(seen)) == len(seen)
    finally:
        ib.disconnect()
        await child.terminate()
