"""RequestChannel: one ib_async session's request-and-answer, with the gateway's timeout.

The account reader and the contract book ask the same session the same way: a dropped session
is ``NotConnected``, silence is a ``BrokerError`` (never an empty answer taken as "none").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from ib_async import IB

from hydra_engine.broker.errors import BrokerError, NotConnected

T = TypeVar("T")


class RequestChannel:
    """Typed failures for requests over one ``IB`` session (shared by the gateway's readers)."""

    def __init__(self, ib: IB, *, host: str, port: int, timeout_s: float) -> None:
        self.ib = ib
        self.host = host
        self.port = port
        self.timeout_s = timeout_s

    def require_session(self) -> None:
        """Raise ``NotConnected`` before asking a session that is not there."""
        if not self.ib.isConnected():
            raise NotConnected(f"not connected to {self.host}:{self.port}")

    async def ask(self, request: Awaitable[T], what: str) -> T:
        """Await one request: a dropped session is NotConnected, silence a BrokerError (not "none")."""
        try:
            return await asyncio.wait_for(request, self.timeout_s)
        except ConnectionError as exc:
            raise NotConnected(f"{what}: {exc}") from exc
        except TimeoutError as exc:
            raise BrokerError(f"{what}: no answer within {self.timeout_s:.1f}s") from exc
