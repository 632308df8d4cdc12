"""Framing, and every server message writer fed back through ib_async's own Decoder."""

from __future__ import annotations

import datetime as dt
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from ib_async.decoder import Decoder

from hydra_engine.sim import messages as M
from hydra_engine.sim.requests import PlaceOrder, RequestError, UnknownMessage, decode_request
from hydra_engine.sim.wire import (
    FrameBuffer, FrameError, decode_payload, encode_frame, negotiate_version, parse_hello,
)  # fmt: skip

UTC = dt.timezone.utc
CL = M.WireContract(917801418, "CL", "FUT", "20180122", 1000, "NYMEX", "USD", "CLG8", "CL")


class Recorder:
    """A wrapper stand-in that records every call the decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.ib = SimpleNamespace(TimezoneTWS=None)
        self.defaultTimezone = UTC

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args))


def client_fields(fields: list[object]) -> list[str]:
    """Exactly what ib_async's Client._onSocketHasData hands the decoder."""
    frame = encode_frame(fields)
    (n,) = struct.unpack(">I", frame[:4])
    assert n == len(frame) - 4
    parts = frame[4:].decode().split("\0")
    parts.pop()
    return parts


def decode(fields: list[object], version: int = 178) -> list[tuple[str, tuple]]:
    rec = Recorder()
    Decoder(rec, version).interpret(client_fields(fields))  # type: ignore[arg-type]
    return rec.calls


# ----- framing ------------------------------------------------------------------------------------
def test_frame_round_trip_in_pieces() -> None:
    frames = encode_frame([71, 2, 5, ""]) + encode_frame([61, 1])
    buf = FrameBuffer()
    out = []
    for i in range(len(frames)):  # one byte at a time
        out += buf.feed(frames[i : i + 1])
    assert [decode_payload(p) for p in out] == [["71", "2", "5", ""], ["61", "1"]]
    assert buf.pending == 0


def test_frame_errors_are_named() -> None:
    with pytest.raises(FrameError, match="exceeds the limit"):
        FrameBuffer(max_frame_bytes=10).feed(struct.pack(">I", 11) + b"x" * 11)
    with pytest.raises(FrameError, match="NUL"):
        decode_payload(b"61\x001")
    with pytest.raises(FrameError, match="UTF-8"):
        decode_payload(b"\xff\xfe\x00")


def test_hello_and_negotiation() -> None:
    h = parse_hello(b"v157..178 +PACEAPI")
    assert (h.min_version, h.max_version, h.options) == (157, 178, "+PACEAPI")
    assert negotiate_version(h, 178) == 178
    assert negotiate_version(h, 157) == 157
    assert negotiate_version(parse_hello(b"v100..170"), 178) == 170
    with pytest.raises(FrameError, match="v157..178"):
        parse_hello(b"hello")


def test_float_fields_have_no_needless_decimals() -> None:
    assert client_fields([1, 2.0, 2.5, None, True, False]) == ["1", "2", "2.5", "", "1", "0"]


# ----- message writers against the decoder ------------------------------------------------------
@pytest.mark.parametrize("version", [157, 160, 163, 166, 170, 176, 177, 178])
def test_open_order_decodes(version: int) -> None:
    o = M.OrderView(12, 3, 1000007, "BUY", 2, "LMT", 61.25, "DAY", "DU1234567", "hydra-1", "Submitted")
    fields = M.open_order(CL, o, version)
    if version in (157, 178):
        assert len(fields) == (120 if version == 157 else 127)
    calls = decode(fields, version)
    assert len(calls) == 1 and calls[0][0] == "openOrder"
    order_id, contract, order, state = calls[0][1]
    assert order_id == 12
    assert (contract.conId, contract.localSymbol, contract.multiplier) == (917801418, "CLG8", "1000")
    assert (order.action, order.totalQuantity, order.lmtPrice, order.orderRef) == ("BUY", 2.0, 61.25, "hydra-1")
    assert (order.clientId, order.permId, order.tif, order.account) == (3, 1000007, "DAY", "DU1234567")
    assert state.status == "Submitted" and not order.whatIf


def test_market_order_has_unset_limit() -> None:
    o = M.OrderView(1, 1, 5, "SELL", 1, "MKT", None, "GTC", "DU1", "", "PreSubmitted")
    (_, (_, _, order, state)), = decode(M.open_order(CL, o, 178))
    assert order.orderType == "MKT" and order.lmtPrice > 1e300 and state.status == "PreSubmitted"


@pytest.mark.parametrize("version", [157, 178])
def test_execution_and_commission_decode(version: int) -> None:
    t = dt.datetime(2018, 3, 1, 15, 30, tzinfo=UTC)
    e = M.ExecutionView("0007.00000001.01.01", 12, 3, 1000007, t, "DU1", "NYMEX", "BOT", 2, 61.25, 2, 61.25, "ref")
    (name, (req_id, contract, ex)), = decode(M.execution_data(-1, CL, e, version), version)
    assert name == "execDetails" and req_id == -1 and contract.conId == CL.con_id
    assert (ex.execId, ex.side, ex.shares, ex.price, ex.orderRef, ex.permId) == (
        "0007.00000001.01.01", "BOT", 2.0, 61.25, "ref", 1000007)
    assert ex.time == t
    (name, (report,)), = decode(M.commission_report("x1", 4.5, "USD", -120.0), version)
    assert (name, report.execId, report.commission, report.realizedPNL) == ("commissionReport", "x1", 4.5, -120.0)


@pytest.mark.parametrize("version", [157, 163, 164, 176, 178])
def test_contract_data_decodes(version: int) -> None:
    d = M.ContractDetailsView(CL, "CL", 0.01, "Light Sweet Crude Oil", "201802", "US/Central",
                              "20180102:1700-20180103:1600", "20180103:0800-20180103:1330", "20180122")
    (name, (req_id, cd)), = decode(M.contract_data(7, d, version), version)
    assert name == "contractDetails" and req_id == 7
    assert (cd.contract.conId, cd.contract.localSymbol, cd.contract.multiplier) == (CL.con_id, "CLG8", "1000")
    assert cd.contract.lastTradeDateOrContractMonth == "20180122"
    assert (cd.minTick, cd.timeZoneId, cd.realExpirationDate, cd.contractMonth) == (0.01, "US/Central", "20180122", "201802")
    assert cd.tradingHours.startswith("20180102:1700") and cd.liquidHours.endswith("1330")


def test_simple_messages_decode() -> None:
    assert decode(M.managed_accounts(["DU1", "DU2"])) == [("managedAccounts", ("DU1,DU2",))]
    assert decode(M.next_valid_id(42)) == [("nextValidId", (42,))]
    assert decode(M.error(-1, 2104, "farm OK", 178)) == [("error", (-1, 2104, "farm OK", ""))]
    assert decode(M.error(5, 201, "rejected", 157), 157) == [("error", (5, 201, "rejected", ""))]
    t = dt.datetime(2018, 3, 1, 15, tzinfo=UTC)
    assert decode(M.current_time(t)) == [("currentTime", (int(t.timestamp()),))]
    (name, (acct, c, qty, cost)), = decode(M.position("DU1", CL, -2, 61250.0))
    assert (name, acct, c.conId, qty, cost) == ("position", "DU1", CL.con_id, -2.0, 61250.0)
    assert decode(M.position_end()) == [("positionEnd", ())]
    assert decode(M.account_value("NetLiquidation", "1000.00", "USD", "DU1")) == [
        ("updateAccountValue", ("NetLiquidation", "1000.00", "USD", "DU1"))]
    (name, args), = decode(M.portfolio_value(CL, 2, 61.3, 122600.0, 61250.0, 100.0, 0.0, "DU1"))
    assert name == "updatePortfolio" and args[1:] == (2.0, 61.3, 122600.0, 61250.0, 100.0, 0.0, "DU1")
    assert decode(M.account_summary(3, "DU1", "NetLiquidation", "5.00", "USD")) == [
        ("accountSummary", (3, "DU1", "NetLiquidation", "5.00", "USD"))]
    assert decode(M.account_summary_end(3)) == [("accountSummaryEnd", (3,))]
    assert decode(M.account_update_multi(4, "DU1", "NetLiquidation", "5.00", "USD")) == [
        ("accountUpdateMulti", (4, "DU1", "", "NetLiquidation", "5.00", "USD"))]
    assert decode(M.account_update_multi_end(4)) == [("accountUpdateMultiEnd", (4,))]
    assert decode(M.order_status(12, "Filled", 2, 0, 61.25, 1000007, 61.25, 3)) == [
        ("orderStatus", (12, "Filled", 2.0, 0.0, 61.25, 1000007, 0, 61.25, 3, "", 0.0))]
    assert decode(M.open_order_end()) == [("openOrderEnd", ())]
    assert decode(M.completed_orders_end()) == [("completedOrdersEnd", ())]
    assert decode(M.execution_data_end(9)) == [("execDetailsEnd", (9,))]
    assert decode(M.contract_data_end(9)) == [("contractDetailsEnd", (9,))]
    assert decode(M.account_download_end("DU1")) == [("accountDownloadEnd", ("DU1",))]
    assert decode(M.account_update_time(t)) == [("updateAccountTime", ("15:00",))]
    assert decode(M.market_data_type(8, 3)) == [("marketDataType", (8, 3))]
    assert decode(M.tick_price(8, 66, 61.2, 5)) == [("priceSizeTick", (8, 66, 61.2, 5.0))]
    assert decode(M.tick_size(8, 74, 1200)) == [("tickSize", (8, 74, 1200.0))]
    assert decode(M.tick_snapshot_end(8)) == [("tickSnapshotEnd", (8,))]


@pytest.mark.parametrize("version", [157, 178])
def test_historical_data_decodes(version: int) -> None:
    rows = [("20180102", 60.0, 61.0, 59.5, 60.5, 1200, 60.2, 400), ("20180103", 60.5, 62.0, 60.1, 61.9, 900, 61.0, 300)]
    calls = decode(M.historical_data(4, "20180101 00:00:00", "20180104 12:00:00", rows), version)
    assert [c[0] for c in calls] == ["historicalData", "historicalData", "historicalDataEnd"]
    bar = calls[1][1][1]
    assert (bar.date, bar.open, bar.close, bar.volume, bar.barCount) == ("20180103", 60.5, 61.9, 900.0, 300)


# ----- client requests ------------------------------------------------------------------------
def _sent_fields(version: int, call: Any) -> list[str]:
    """Run an ib_async Client request method and capture the fields it sends."""
    from ib_async.client import Client

    c = Client(Recorder())
    c._serverVersion = version
    c.connState = Client.CONNECTED
    sent: list[str] = []
    c.sendMsg = lambda msg: sent.append(msg)  # type: ignore[method-assign]
    call(c)
    fields = sent[0].split("\0")
    fields.pop()
    return fields


@pytest.mark.parametrize("version", [157, 160, 166, 169, 170, 176, 177, 178])
def test_place_order_parses_what_ib_async_sends(version: int) -> None:
    from ib_async import Future, LimitOrder

    fut = Future("CL", "201802", "NYMEX", conId=917801418)
    order = LimitOrder("SELL", 3, 61.27, tif="GTC", orderRef="hydra-7", account="DU1234567")
    fields = _sent_fields(version, lambda c: c.placeOrder(31, fut, order))
    if version in (157, 178):
        assert len(fields) == (110 if version == 157 else 114)
    req = decode_request(fields, version)
    assert isinstance(req, PlaceOrder)
    assert (req.order_id, req.contract.con_id, req.contract.symbol) == (31, 917801418, "CL")
    assert (req.action, req.total_qty, req.order_type, req.lmt_price, req.tif) == ("SELL", 3.0, "LMT", 61.27, "GTC")
    assert (req.order_ref, req.account, req.what_if, req.unsupported) == ("hydra-7", "DU1234567", False, "")


def test_request_errors_name_the_field() -> None:
    with pytest.raises(UnknownMessage):
        decode_request(["9999", "1"], 178)
    with pytest.raises(RequestError, match="reqId"):
        decode_request(["62", "1", "abc", "All", "NetLiquidation"], 178)
    with pytest.raises(RequestError, match="ended"):
        decode_request(["62", "1"], 178)


def test_sim_stands_alone() -> None:
    """A fresh interpreter importing the exchange loads nothing else of hydra_engine, nor textual."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, hydra_engine.sim, hydra_engine.sim.standalone, hydra_engine.sim.exchange_server, hydra_engine.sim.universe\n"
        "bad = [m for m in sys.modules if (m.startswith('hydra_engine.') and not m.startswith('hydra_engine.sim'))"
        " or m.startswith(('textual', 'hydra_tui'))]\n"
        "print(','.join(bad))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# ----- fuzzing ------------------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_field = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_field, min_size=1, max_size=6), min_size=1, max_size=6), st.data())
def test_frames_survive_any_chunking(messages: list[list[str]], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    buf, out, prev = FrameBuffer(), [], 0
    for cut in [*cuts, len(stream)]:
        out += buf.feed(stream[prev:cut])
        prev = max(prev, cut)
    assert [decode_payload(p) for p in out] == messages


_ids = st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8", "9", "15", "16", "20", "49", "59", "61", "62", "71", "76", "99", "x", "", "123456"])


@settings(max_examples=400, deadline=None)
@given(_ids, st.lists(st.one_of(_field, st.sampled_from(["0", "1", "-1", "1.5", "Infinite", "nan", "BAG", "FUT"])), max_size=120))
def test_any_request_fields_decode_or_fail_cleanly(msg_id: str, rest: list[str]) -> None:
    try:
        decode_request([msg_id, *rest], 178)
    except (RequestError, UnknownMessage):
        pass


@pytest.mark.parametrize("version", [157, 170, 178])
def test_completed_order_decodes(version: int) -> None:
    o = M.OrderView(12, 3, 1000007, "SELL", 2, "LMT", 61.25, "DAY", "DU1", "hydra-2", "Filled")
    t = dt.datetime(2018, 3, 1, 15, 30, tzinfo=UTC)
    (name, (contract, order, state)), = decode(M.completed_order(CL, o, 2, t, version), version)
    assert name == "completedOrder" and contract.localSymbol == "CLG8"
    assert (order.action, order.totalQuantity, order.permId, order.orderRef, order.filledQuantity) == (
        "SELL", 2.0, 1000007, "hydra-2", 2.0)
    assert (state.status, state.completedStatus, state.completedTime) == ("Filled", "Filled", "20180301 15:30:00 UTC")
