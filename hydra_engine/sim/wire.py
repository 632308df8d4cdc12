"""TWS wire framing and the connect handshake, server side.

Both directions carry a 4-byte big-endian length, then NUL-terminated UTF-8 fields. The client
opens with the raw bytes ``API\\0`` and one framed version range (``v157..178``, no trailing NUL);
the server answers ``<version>\\0<connTime>\\0``. Everything here is pure (no sockets), except the
two small ``read_*`` coroutines that pull bytes from an ``asyncio.StreamReader``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import struct
from dataclasses import dataclass
from typing import Iterable

API_PREFIX = b"API\0"
MAX_FRAME_BYTES = 1 << 20
"""Largest frame accepted from a client (1 MiB); a bigger length prefix is a malformed frame."""
MIN_SUPPORTED_VERSION = 157
MAX_SUPPORTED_VERSION = 178

_LENGTH = struct.Struct(">I")
_VERSION_RANGE = re.compile(r"^v(\d+)(?:\.\.(\d+))?(?:\s+(.*))?$")


class FrameError(ValueError):
    """A frame or handshake that cannot be parsed; the connection cannot be trusted afterwards."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What the client offered in its handshake."""

    min_version: int
    max_version: int
    options: str


def format_field(value: object) -> str:
    """One field as TWS writes it: None empty, bools 1/0, floats without a needless ``.0``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value != value:  # NaN never goes on the wire
            return ""
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def encode_frame(fields: Iterable[object]) -> bytes:
    """Length-prefixed frame of NUL-terminated fields."""
    parts = []
    for f in fields:
        t = type(f)
        if t is str:
            parts.append(f)
        elif t is int:
            parts.append(str(f))
        else:
            parts.append(format_field(f))
    parts.append("")
    payload = "\0".join(parts).encode("utf-8")
    return _LENGTH.pack(len(payload)) + payload


def encode_raw_frame(payload: bytes) -> bytes:
    """Length-prefix an already-built payload (the handshake string has no trailing NUL)."""
    return _LENGTH.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> list[str]:
    """Split a frame payload into fields; the trailing NUL is required."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError(f"frame is not valid UTF-8 at byte {exc.start}") from exc
    if not text:
        raise FrameError("empty frame")
    if not text.endswith("\0"):
        raise FrameError("frame does not end with a NUL field terminator")
    return text[:-1].split("\0")


class FrameBuffer:
    """Incremental decoder for a byte stream: feed bytes, take complete frames."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes; return every complete payload now available."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            (n,) = _LENGTH.unpack_from(self._buf, 0)
            if n > self._max:
                raise FrameError(f"frame length {n} exceeds the limit of {self._max} bytes")
            if len(self._buf) < 4 + n:
                break
            out.append(bytes(self._buf[4 : 4 + n]))
            del self._buf[: 4 + n]
        return out

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)


async def read_payload(reader: asyncio.StreamReader, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Read one frame's payload; ``asyncio.IncompleteReadError`` when the peer closes mid-frame."""
    head = await reader.readexactly(4)
    (n,) = _LENGTH.unpack(head)
    if n > max_frame_bytes:
        raise FrameError(f"frame length {n} exceeds the limit of {max_frame_bytes} bytes")
    return await reader.readexactly(n)


def parse_hello(payload: bytes) -> ClientHello:
    """Parse ``v157..178 [+OPTIONS]`` (the handshake frame has no trailing NUL)."""
    text = payload.decode("utf-8", errors="replace").rstrip("\0").strip()
    m = _VERSION_RANGE.match(text)
    if not m:
        raise FrameError(f"handshake version range {text[:40]!r} is not of the form 'v157..178'")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if hi < lo:
        raise FrameError(f"handshake version range {text!r} has max < min")
    return ClientHello(lo, hi, (m.group(3) or "").strip())


async def read_hello(reader: asyncio.StreamReader) -> ClientHello:
    """Read ``API\\0`` and the framed version range."""
    prefix = await reader.readexactly(4)
    if prefix != API_PREFIX:
        raise FrameError(f"connection did not open with 'API\\0' (got {prefix!r})")
    return parse_hello(await read_payload(reader, 256))


def negotiate_version(hello: ClientHello, server_max: int) -> int:
    """The version both sides speak: min(client max, server max).

    Returns a version below the client's minimum when there is no overlap, as TWS does; the
    client then disconnects on its own.
    """
    return min(hello.max_version, server_max)


def format_conn_time(t: dt.datetime) -> str:
    """Connection time as TWS sends it in the handshake reply."""
    return t.astimezone(dt.timezone.utc).strftime("%Y%m%d %H:%M:%S UTC")


def handshake_reply(version: int, t: dt.datetime) -> bytes:
    return encode_frame([version, format_conn_time(t)])
