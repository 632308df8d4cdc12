"""Small typed state that must survive restarts: pause flag, autonomy level, agent phase, client id.

Each value is stored as JSON under a ``StateKey`` that fixes its type and default, so a reader
never guesses and a wrong type is refused when written rather than discovered after a restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiosqlite

from hydra_engine.clock import Clock, to_iso
from hydra_engine.store.lock import WriteGate

T = TypeVar("T")

_JSON_TYPES = (bool, int, float, str, dict, list)


@dataclass(frozen=True, slots=True)
class StateKey(Generic[T]):
    """A named, typed value; ``kind`` is bool, int, float, str, dict or list."""

    name: str
    kind: type
    default: T

    def check(self, value: Any) -> T:
        """``value`` if it has this key's type (int accepted for float), else TypeError naming the key."""
        if value is None and self.default is None:
            return value  # type: ignore[no-any-return]
        ok = isinstance(value, self.kind)
        if self.kind is int and isinstance(value, bool):
            ok = False
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if self.kind in (int, float) and isinstance(value, bool):
            ok = False
        if not ok:
            raise TypeError(f"state key {self.name!r} holds {self.kind.__name__}, got {type(value).__name__} {value!r}")
        return value  # type: ignore[no-any-return]


PAUSED: StateKey[bool] = StateKey("paused", bool, False)
PAUSE_REASON: StateKey[str] = StateKey("pause_reason", str, "")
AUTONOMY_LEVEL: StateKey[str] = StateKey("autonomy_level", str, "supervised")
AGENT_PHASE: StateKey[str] = StateKey("agent_phase", str, "IDLE")
CLIENT_ID: StateKey[int | None] = StateKey("client_id", int, None)
"""The fixed IB client id used with this store (never 0); None until first chosen."""
LAST_CYCLE_DATE: StateKey[str] = StateKey("last_cycle_date", str, "")


class KeyValueStore:
    """Repository over table ``kv``."""

    def __init__(self, conn: aiosqlite.Connection, gate: WriteGate, clock: Clock) -> None:
        self._conn = conn
        self._gate = gate
        self._clock = clock

    async def get(self, key: StateKey[T]) -> T:
        """The stored value, or the key's default when never set."""
        raw = await self.get_raw(key.name)
        if raw is _MISSING:
            return key.default
        try:
            return key.check(raw)
        except TypeError as exc:
            raise ValueError(f"stored state {key.name!r} is unreadable: {exc}") from None

    async def set(self, key: StateKey[T], value: T) -> None:
        await self.set_raw(key.name, key.check(value))

    async def get_raw(self, name: str) -> Any:
        async with self._conn.execute("SELECT value FROM kv WHERE key = ?", (name,)) as cur:
            row = await cur.fetchone()
        return _MISSING if row is None else json.loads(row[0])

    async def set_raw(self, name: str, value: Any) -> None:
        """Store any JSON-serialisable value under ``name``."""
        if not name:
            raise ValueError("state key name must not be empty")
        text = json.dumps(value)
        async with self._gate.transaction() as conn:
            await conn.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (name, text, to_iso(self._clock.now())),
            )

    async def delete(self, name: str) -> bool:
        async with self._gate.transaction() as conn:
            cur = await conn.execute("DELETE FROM kv WHERE key = ?", (name,))
            n = cur.rowcount
            await cur.close()
        return n > 0

    async def items(self) -> dict[str, Any]:
        async with self._conn.execute("SELECT key, value FROM kv ORDER BY key") as cur:
            return {k: json.loads(v) for k, v in await cur.fetchall()}


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
