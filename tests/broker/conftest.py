"""Fixtures for broker tests: a factory for embedded exchanges and connected gateways.

Everything is real: the embedded exchange (``make_exchange`` from tests/conftest.py) listens on
127.0.0.1 port 0 and the real ib_async client talks to it through ``BrokerGateway``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hydra_engine.broker.connection import BackoffPolicy
from hydra_engine.broker.gateway import BrokerGateway
from hydra_engine.sim import EmbeddedExchange

FAST_BACKOFF = BackoffPolicy(initial_s=0.05, max_s=0.3, jitter=0.1)


@pytest.fixture
async def make_gateway() -> AsyncIterator[Callable[..., Any]]:
    made: list[BrokerGateway] = []

    def make(ex: EmbeddedExchange, **kwargs: Any) -> BrokerGateway:
        kwargs.setdefault("client_id", 11)
        kwargs.setdefault("embedded", True)
        kwargs.setdefault("clock", ex.clock)
        kwargs.setdefault("backoff", FAST_BACKOFF)
        kwargs.setdefault("connect_timeout_s", 2.0)
        kwargs.setdefault("request_timeout_s", 5.0)
        gw = BrokerGateway(port=ex.port, **kwargs)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        with contextlib.suppress(Exception):
            await gw.disconnect()
