"""Bad input on one raw socket never disturbs a real ib_async client on another."""

from __future__ import annotations

import asyncio
import struct

import pytest

pytestmark = pytest.mark.timeout(60)


def frame(*fields: str) -> bytes:
    payload = "".join(f + "\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


class Raw:
    """A hand-driven TWS API connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, client_id: int | None = 50) -> "Raw":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        hello = b"v157..178"
        writer.write(b"API\0" + struct.pack(">I", len(hello)) + hello)
        version, _ = await raw.read()
        assert version == "178"
        if client_id is not None:
            writer.write(frame("71", "2", str(client_id), ""))
            seen = set()
            while not {"15", "9"} <= seen:
                seen.add((await raw.read())[0])
        return raw

    async def read(self, timeout: float = 5.0) -> list[str]:
        head = await asyncio.wait_for(self.reader.readexactly(4), timeout)
        body = await asyncio.wait_for(self.reader.readexactly(struct.unpack(">I", head)[0]), timeout)
        fields = body.decode().split("\0")
        fields.pop()
        return fields

    async def read_until(self, msg_id: str, timeout: float = 5.0) -> list[str]:
        """Next message with this id (farm-status notices 2104/2106/2158 are skipped)."""
        while True:
            f = await self.read(timeout)
            if f[0] == msg_id and not (f[0] == "4" and f[3] in ("2104", "2106", "2158")):
                return f

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        try:
            while True:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not data:
                    return True
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()


async def still_served(ib) -> None:
    summary = await asyncio.wait_for(ib.accountSummaryAsync(), 5)
    assert any(v.tag == "NetLiquidation" for v in summary)


async def test_unknown_message_and_garbage_field_get_errors_and_the_connection_lives(exchange, ib_client) -> None:
    ib = await ib_client(client_id=1)
    raw = await Raw.open(exchange.port)
    raw.writer.write(frame("9999", "1", "x"))
    err = await raw.read_until("4")
    assert err[3] == "505" and "9999" in err[4]
    raw.writer.write(frame("62", "1", "not-a-number", "All", "NetLiquidation"))
    err = await raw.read_until("4")
    assert err[3] == "320" and "reqId" in err[4]
    raw.writer.write(frame("49", "1"))  # reqCurrentTime still answered
    reply = await raw.read_until("49")
    assert int(reply[2]) == int(exchange.clock.now().timestamp())
    await still_served(ib)
    raw.close()


@pytest.mark.parametrize("junk", [
    struct.pack(">I", 50_000_000) + b"x",      # absurd length prefix
    struct.pack(">I", 5) + b"49\x001x",        # no trailing NUL
    struct.pack(">I", 3) + b"\xff\xfe\x00",    # not UTF-8
])  # fmt: skip
async def test_malformed_frame_closes_only_that_connection(exchange, ib_client, junk: bytes) -> None:
    ib = await ib_client(client_id=1)
    raw = await Raw.open(exchange.port)
    assert exchange.clients == [1, 50]
    raw.writer.write(junk)
    assert await raw.closed_by_peer()
    assert exchange.clients == [1]
    await still_served(ib)


async def test_half_a_message_then_close(exchange, ib_client, until) -> None:
    ib = await ib_client(client_id=1)
    raw = await Raw.open(exchange.port)
    whole = frame("62", "1", "5", "All", "NetLiquidation")
    raw.writer.write(whole[: len(whole) // 2])
    await raw.writer.drain()
    raw.close()
    await until(lambda: exchange.clients == [1], what="half-message client dropped")
    await still_served(ib)


async def test_wrong_greeting_and_request_before_start_api(exchange, ib_client) -> None:
    ib = await ib_client(client_id=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", exchange.port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await Raw(reader, writer).closed_by_peer()
    raw = await Raw.open(exchange.port, client_id=None)
    raw.writer.write(frame("61", "1"))
    err = await raw.read_until("4")
    assert err[3] == "321" and "START_API" in err[4]
    raw.close()
    await still_served(ib)


async def test_garbage_in_an_order_fails_that_order(exchange, ib_client, until) -> None:
    """A numeric field the exchange cannot read: error 320 on that order id, the trade ends."""
    from ib_async import Future, LimitOrder

    ib = await ib_client(client_id=1)
    c = (await ib.reqContractDetailsAsync(Future("CL")))[0].contract
    order = LimitOrder("BUY", 1, 50.0)
    order.totalQuantity = "lots"  # type: ignore[assignment]  # ib_async sends it verbatim
    errors: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
    trade = ib.placeOrder(c, order)
    await until(lambda: trade.isDone(), what="the bad order to end")
    assert errors == [(trade.order.orderId, 320)]
    assert exchange.open_orders() == []
    await still_served(ib)


async def test_history_outside_the_universe_fails_only_that_request(exchange, ib_client) -> None:
    from ib_async import Future

    ib = await ib_client(client_id=1)
    c = (await ib.reqContractDetailsAsync(Future("CL")))[0].contract
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
    bars = await ib.reqHistoricalDataAsync(c, "19900105 12:00:00 UTC", "5 D", "1 day", "TRADES", True, timeout=5)
    assert list(bars) == [] and codes and codes[-1] in (162, 322)
    await still_served(ib)
