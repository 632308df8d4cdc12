"""Executions recovered before anyone listens (the engine's first connect to an IB Gateway happens
before its order manager exists) are held for the first listener, never consumed unjournalled."""

from __future__ import annotations

import datetime as dt

from ib_async import CommissionReport, Contract, Execution, Fill

from hydra_engine.broker.sync import ExecutionAssembler


def fill(exec_id: str) -> Fill:
    contract = Contract(conId=42, symbol="CL", localSymbol="CLJ8", lastTradeDateOrContractMonth="20180320")
    execution = Execution(execId=exec_id, orderId=7, permId=900, orderRef="HY-CL-1", side="BOT", shares=1.0,
                          price=61.25, time=dt.datetime(2018, 3, 6, 15, 0, tzinfo=dt.UTC))
    return Fill(contract, execution, CommissionReport(execId=exec_id, commission=2.25), execution.time)


async def test_executions_offered_before_any_listener_reach_the_first_one_once() -> None:
    assembler = ExecutionAssembler()
    assert assembler.offer(fill("a.01.01"), live=False) and assembler.offer(fill("b.01.01"), live=False)
    assert not assembler.offer(fill("a.01.01"), live=False)  # the second sync sees it again: not taken twice
    got: list[str] = []
    assembler.subscribe(lambda rep: got.append(rep.exec_id))
    assert got == ["a.01.01", "b.01.01"]
    later: list[str] = []
    assembler.subscribe(lambda rep: later.append(rep.exec_id))
    assert later == []  # the backlog went to the first listener only
    assembler.offer(fill("c.01.01"), live=True)
    assert got == ["a.01.01", "b.01.01", "c.01.01"] and later == ["c.01.01"]
