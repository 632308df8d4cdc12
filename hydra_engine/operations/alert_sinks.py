"""Where an alert goes: a command the operator names, or an HTTP webhook. Neither blocks the loop.

``CommandSink`` runs an argv list (never a shell string) through asyncio's subprocess support,
hands it the alert as JSON on stdin and as ``HYDRA_ALERT_*`` environment variables, and kills its
process group if it outlives the timeout. ``WebhookSink`` POSTs the same JSON with the standard
library's HTTP client in a worker thread, with a timeout; a loopback URL never goes through a proxy.
A failure is an ``AlertDeliveryError`` whose message is safe to journal (no URL query, no token).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
STDERR_TAIL_CHARS = 400


class AlertDeliveryError(RuntimeError):
    """A channel did not take the alert; the message says why (journalled as is)."""


class AlertSink(Protocol):
    """One delivery channel."""

    @property
    def name(self) -> str: ...

    async def deliver(self, payload: Mapping[str, Any]) -> None:
        """Deliver ``payload`` (JSON-ready) or raise ``AlertDeliveryError``."""
        ...


def alert_env(payload: Mapping[str, Any]) -> dict[str, str]:
    """The ``HYDRA_ALERT_*`` variables a command receives besides the JSON on stdin."""
    keys = ("kind", "severity", "message", "at", "account", "mode", "store")
    return {f"HYDRA_ALERT_{k.upper()}": str(payload.get(k, "")) for k in keys}


class CommandSink:
    """Runs ``argv`` once per alert: JSON on stdin, ``HYDRA_ALERT_*`` in the environment."""

    def __init__(self, argv: Sequence[str], timeout_s: float = 30.0) -> None:
        if not argv:
            raise ValueError("alerts.command: an empty command")
        self.argv = tuple(argv)
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        return "command"

    async def deliver(self, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload, default=str, sort_keys=True).encode()
        env = {**os.environ, **alert_env(payload)}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
            )
        except OSError as exc:
            raise AlertDeliveryError(f"cannot run {self.argv[0]!r}: {exc.strerror or exc}") from None
        try:
            _, err = await asyncio.wait_for(proc.communicate(data), self.timeout_s)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise AlertDeliveryError(f"{self.argv[0]!r} did not finish within {self.timeout_s:g} s (killed)") from None
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        if proc.returncode != 0:
            tail = (err or b"").decode(errors="replace").strip()[-STDERR_TAIL_CHARS:]
            raise AlertDeliveryError(f"{self.argv[0]!r} exited with {proc.returncode}" + (f": {tail}" if tail else ""))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class WebhookSink:
    """POSTs the alert's JSON to ``url``; any 2xx answer is a delivery."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"alerts.webhook = {url!r}: must be an http:// or https:// URL with a host")
        self.url = url
        self.timeout_s = timeout_s
        self._where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        """The URL without path or query (which may carry a token), for messages and the journal."""
        handlers: list[urllib.request.BaseHandler] = []
        if parts.hostname in LOOPBACK_HOSTS:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def name(self) -> str:
        return "webhook"

    async def deliver(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, default=str, sort_keys=True).encode()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._post, body), self.timeout_s + 1.0)
        except TimeoutError:
            raise AlertDeliveryError(f"webhook {self._where} did not answer within {self.timeout_s:g} s") from None

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "HYDRA-alerts"})
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                resp.read(4096)
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            raise AlertDeliveryError(f"webhook {self._where} answered HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise AlertDeliveryError(f"webhook {self._where} unreachable: {exc.reason}") from None
        except (TimeoutError, OSError) as exc:
            raise AlertDeliveryError(f"webhook {self._where} failed: {exc}") from None
        if not 200 <= status < 300:
            raise AlertDeliveryError(f"webhook {self._where} answered HTTP {status}")
