"""``ExchangeCore``: what a client session may use of the exchange, and nothing more.

``ClientSession`` (``client_session.py``) answers read-only requests itself and hands everything
that changes state to the core; it never sees ``EmbeddedExchange`` or its fields. Keeping the
seam this small is what lets the exchange decide the order of every message in one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .account_book import AccountBook
    from .client_session import ClientSession
    from .datafeed import DataFeed
    from .faults import FaultPlan
    from .messages import WireContract
    from .orders import Execution, WorkingOrder
    from .requests import Request


class ExchangeClock(Protocol):
    """The only thing a session asks of the clock."""

    def now(self) -> dt.datetime: ...


class ExchangeCore(Protocol):
    """The exchange as one client session sees it."""

    @property
    def clock(self) -> ExchangeClock: ...

    @property
    def accounts(self) -> list[str]:
        """Account ids managed by this login (the first is the default)."""
        ...

    @property
    def account_book(self) -> AccountBook: ...

    @property
    def feed(self) -> DataFeed:
        """Contract lookup, details, bars and ticks."""
        ...

    @property
    def faults(self) -> FaultPlan: ...

    @property
    def max_server_version(self) -> int: ...

    @property
    def pacing(self) -> bool:
        """Whether historical-data pacing is enforced."""
        ...

    def wire(self, con_id: int) -> WireContract | None:
        """The contract block IB sends for ``con_id`` (None for an unknown conId)."""
        ...

    def next_valid_id(self, client_id: int) -> int: ...

    def executions_today(self) -> list[Execution]: ...

    def completed_orders_today(self) -> list[WorkingOrder]: ...

    def client(self, client_id: int) -> ClientSession | None:
        """The session registered under ``client_id``, if any (it may be closing)."""
        ...

    def register(self, s: ClientSession) -> None: ...

    def unregister(self, s: ClientSession) -> None: ...

    def submit(self, s: ClientSession, req: Request) -> None:
        """Every decoded request goes here: the exchange runs its faults and state changes and
        hands read-only requests back to ``s.answer``."""
        ...

    def spawn(self, coro: Coroutine[object, object, None], name: str) -> None:
        """Run ``coro`` as a task the exchange cancels on ``stop()``."""
        ...
