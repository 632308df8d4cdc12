"""Connection supervisor: connect, notice the loss, reconnect with capped jittered back-off.

ib_async never reconnects by itself (a gateway's daily restart just closes the socket), so one
supervisor task per gateway owns the retry loop. It never gives up while the engine runs; only a
deliberate ``stop()`` (or a refusal that retrying cannot cure, such as a live account offered in
paper mode) ends it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from hydra_engine.broker.errors import LiveAccountRefused, NotConnected

log = structlog.get_logger(__name__)

FATAL_ERRORS: tuple[type[BaseException], ...] = (LiveAccountRefused,)
"""Failures that retrying cannot cure: the supervisor stops and reports them."""


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential back-off with proportional jitter, capped at ``max_s`` seconds."""

    initial_s: float = 0.5
    max_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.25
    """Fraction of the delay drawn uniformly in ``[-jitter, +jitter]`` (0 disables it)."""

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"backoff initial_s={self.initial_s} must be in (0, max_s={self.max_s}]")
        if self.multiplier < 1:
            raise ValueError(f"backoff multiplier={self.multiplier} must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff jitter={self.jitter} must be in [0, 1)")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        base = min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))
        if self.jitter:
            r = (rng or random).uniform(-self.jitter, self.jitter)
            base *= 1.0 + r
        return max(0.0, min(self.max_s, base))


class ConnectionSupervisor:
    """Runs ``attempt`` until it succeeds, then waits for ``notify_lost`` and starts over."""

    def __init__(
        self,
        attempt: Callable[[], Awaitable[None]],
        policy: BackoffPolicy | None = None,
        *,
        name: str = "broker",
        rng: random.Random | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._attempt = attempt
        self._policy = policy or BackoffPolicy()
        self._name = name
        self._rng = rng or random.Random()
        self._on_change = on_change or (lambda: None)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._kick = asyncio.Event()
        self._stopping = False
        self._attempting = False
        self.failures = 0
        """Consecutive failed attempts since the last success."""
        self.connects = 0
        """Successful connects (the first one and every reconnect)."""
        self.last_error: BaseException | None = None
        self.fatal_error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def attempting(self) -> bool:
        """True while an attempt is in flight (a disconnect then is part of a failed attempt)."""
        return self._attempting

    def start(self) -> None:
        """Start the loop (idempotent); clears an earlier deliberate stop."""
        if self.running:
            return
        self._stopping = False
        self.fatal_error = None
        self._lost.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self._name}-supervisor")

    def kick(self) -> None:
        """Skip the current back-off wait and try now."""
        self._kick.set()

    def notify_lost(self) -> None:
        """The session dropped (not deliberately): reconnect with back-off."""
        self._connected.clear()
        self._lost.set()

    async def wait_connected(self, timeout: float | None) -> bool:
        """Wait until connected, the loop dies, or ``timeout`` seconds pass."""
        if self._connected.is_set():
            return True
        if self._task is None:
            return False
        waiter = asyncio.ensure_future(self._connected.wait())
        try:
            done, _ = await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return self._connected.is_set()

    async def stop(self) -> None:
        """Deliberate stop: no reconnect afterwards."""
        self._stopping = True
        self._connected.clear()
        self._lost.set()
        self._kick.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._on_change()

    async def _run(self) -> None:
        while not self._stopping:
            self._lost.clear()
            self._attempting = True
            try:
                await self._attempt()
            except asyncio.CancelledError:
                raise
            except FATAL_ERRORS as exc:
                self.fatal_error = exc
                self.last_error = exc
                log.error("broker.connect_refused", supervisor=self._name, error=str(exc))
                self._attempting = False
                self._on_change()
                return
            except Exception as exc:  # noqa: BLE001 - every other failure is retried
                self.last_error = exc
                delay = self._policy.delay(self.failures, self._rng)
                self.failures += 1
                self._attempting = False
                self._on_change()
                log.warning(
                    "broker.connect_failed",
                    supervisor=self._name,
                    attempt=self.failures,
                    retry_in_s=round(delay, 3),
                    error=f"{type(exc).__name__}: {exc}",
                )
                self._kick.clear()
                try:
                    await asyncio.wait_for(self._kick.wait(), timeout=delay)
                except TimeoutError:
                    pass
                continue
            finally:
                self._attempting = False
            self.failures = 0
            self.connects += 1
            self.last_error = None
            if self._lost.is_set():
                # dropped between the end of the attempt and now: go round again
                continue
            self._connected.set()
            self._on_change()
            await self._lost.wait()
            self._connected.clear()
            if not self._stopping:
                log.warning("broker.connection_lost", supervisor=self._name)


async def probe_accounts(host: str, port: int, client_id: int, timeout_s: float = 4.0) -> list[str]:
    """Accounts managed by the gateway at ``host:port``, read over a read-only session.

    For the live-confirmation modal, which must name the account before any order-capable session
    exists: nothing is subscribed beyond ib_async's start-up requests and no order can be sent.
    """
    if client_id <= 0:
        raise ValueError(f"client_id={client_id!r}: a positive client id is required")
    from ib_async import IB

    ib = IB()
    try:
        await ib.connectAsync(host, port, clientId=client_id, timeout=timeout_s, readonly=True)
        return list(ib.managedAccounts())
    except (OSError, TimeoutError, ConnectionError) as exc:
        raise NotConnected(f"no API session with {host}:{port} to read the account: {exc}") from exc
    finally:
        ib.disconnect()
