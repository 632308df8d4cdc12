"""Shared fixtures: an embedded exchange on a loopback port and real ib_async clients.

``exchange``: an ``EmbeddedExchange`` on 127.0.0.1 port 0, lock-step clock, seed 7, state file in
``tmp_path``. ``make_exchange(**kw)``: the same with options (faults, server version...).
``ib_client(client_id=1, exchange=None)``: connects a real ``ib_async.IB`` with
``raiseSyncErrors=True`` (client throttle lifted: embedded exchange only) and disconnects it at
teardown.

Tests marked ``slow`` (long soak or statistical runs) are skipped unless ``HYDRA_SLOW=1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from hydra_engine.sim import EmbeddedExchange


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.slow`` tests unless HYDRA_SLOW=1: CI and the README command stay quick."""
    import os

    if os.environ.get("HYDRA_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set HYDRA_SLOW=1 to run it")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sim_universe() -> Any:
    """One deterministic market universe (seed 7) shared by the session: building it costs ~0.5 s."""
    from hydra_engine.sim.universe import build_universe

    return build_universe(seed=7)


@pytest.fixture
async def make_exchange(tmp_path: Path, sim_universe: Any) -> AsyncIterator[Callable[..., Awaitable[EmbeddedExchange]]]:
    started: list[EmbeddedExchange] = []

    async def make(**kw: Any) -> EmbeddedExchange:
        kw.setdefault("port", 0)
        kw.setdefault("seed", 7)
        kw.setdefault("universe", sim_universe)
        kw.setdefault("state_path", tmp_path / f"exchange-{len(started)}.json")
        ex = await EmbeddedExchange.start(**kw)
        started.append(ex)
        return ex

    yield make
    for ex in started:
        await ex.stop()


@pytest.fixture
async def exchange(make_exchange: Callable[..., Awaitable[EmbeddedExchange]]) -> EmbeddedExchange:
    return await make_exchange()


@pytest.fixture
async def ib_client(exchange: EmbeddedExchange) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    from ib_async import IB

    clients: list[Any] = []

    async def connect(client_id: int = 1, ex: EmbeddedExchange | None = None, timeout: float = 5.0) -> Any:
        ib = IB()
        ib.client.MaxRequests = 0  # embedded exchange only
        clients.append(ib)
        await ib.connectAsync("127.0.0.1", (ex or exchange).port, clientId=client_id, timeout=timeout,
                              raiseSyncErrors=True)
        return ib

    yield connect
    for ib in clients:
        ib.disconnect()


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """``await until(cond, timeout=5)``: wait for a condition (re-checked every few ms) or fail."""
    import asyncio

    async def wait(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not cond():
            if loop.time() > deadline:
                raise AssertionError(f"{what} not met within {timeout} s")
            await asyncio.sleep(0.005)

    return wait
