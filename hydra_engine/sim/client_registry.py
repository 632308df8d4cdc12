"""Which client connections the exchange has, and which client id each started one holds.

A part of ``EmbeddedExchange`` that the order delivery, the marker and the sessions consult, so
none of them reads the exchange's own fields. Iteration orders are those of the former fields
(connections: a set; started clients: registration order), so message order does not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client_session import ClientSession


class ClientRegistry:
    """Open connections, and started clients by id (at most one live session per client id)."""

    def __init__(self) -> None:
        self._sessions: set[ClientSession] = set()
        self._by_client: dict[int, ClientSession] = {}

    def add(self, s: ClientSession) -> None:
        """A connection was accepted (not started yet)."""
        self._sessions.add(s)

    def register(self, s: ClientSession) -> None:
        """``s`` sent START_API with its client id."""
        assert s.client_id is not None
        self._by_client[s.client_id] = s

    def unregister(self, s: ClientSession) -> None:
        """``s`` closed: forget the connection, and its client id if it still holds it."""
        self._sessions.discard(s)
        if s.client_id is not None and self._by_client.get(s.client_id) is s:
            del self._by_client[s.client_id]

    def get(self, client_id: int) -> ClientSession | None:
        """The session registered under ``client_id`` (maybe closing), else None."""
        return self._by_client.get(client_id)

    def started(self) -> list[ClientSession]:
        """Registered sessions, in registration order (a copy: callers may close them)."""
        return list(self._by_client.values())

    def open_connections(self) -> list[ClientSession]:
        """Every connection not closed yet, started or not."""
        return [s for s in self._sessions if not s.closed]

    def client_ids(self) -> list[int]:
        """Client ids of the connected, started sessions."""
        return sorted(cid for cid, s in self._by_client.items() if not s.closed)

    def close_all(self, reason: str) -> None:
        """Close every connection (each through its own ``close``)."""
        for s in list(self._sessions):
            s.close(reason)
