"""Client -> server request decoders (every message but the order ones, see ``order_requests``).

Each decoder reads its message sequentially with a ``FieldReader`` (``request_fields``) that names
the field it was reading when something is wrong, so a garbage value produces a clear log line and
an IB-style error (320) instead of a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Re-exported: callers import every request type and error from here.
from .order_requests import CancelOrder, PlaceOrder, read_cancel_order, read_place_order  # noqa: F401
from .request_fields import (  # noqa: F401
    UNSET_DOUBLE, UNSET_INTEGER, ContractReq, FieldReader, RequestError, UnknownMessage,
)


@dataclass(frozen=True, slots=True)
class StartApi:
    client_id: int
    optional_capabilities: str


@dataclass(frozen=True, slots=True)
class ReqPositions:
    pass


@dataclass(frozen=True, slots=True)
class CancelPositions:
    pass


@dataclass(frozen=True, slots=True)
class ReqOpenOrders:
    all_clients: bool


@dataclass(frozen=True, slots=True)
class ReqAutoOpenOrders:
    auto_bind: bool


@dataclass(frozen=True, slots=True)
class ReqCompletedOrders:
    api_only: bool


@dataclass(frozen=True, slots=True)
class ReqAccountUpdates:
    subscribe: bool
    account: str


@dataclass(frozen=True, slots=True)
class ReqAccountUpdatesMulti:
    req_id: int
    account: str
    model_code: str


@dataclass(frozen=True, slots=True)
class CancelAccountUpdatesMulti:
    req_id: int


@dataclass(frozen=True, slots=True)
class ReqExecutions:
    req_id: int
    client_id: int
    account: str
    time: str
    symbol: str
    sec_type: str
    exchange: str
    side: str


@dataclass(frozen=True, slots=True)
class ReqAccountSummary:
    req_id: int
    group: str
    tags: str


@dataclass(frozen=True, slots=True)
class CancelAccountSummary:
    req_id: int


@dataclass(frozen=True, slots=True)
class ReqContractDetails:
    req_id: int
    contract: ContractReq
    include_expired: bool


@dataclass(frozen=True, slots=True)
class ReqHistoricalData:
    req_id: int
    contract: ContractReq
    include_expired: bool
    end_date_time: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


@dataclass(frozen=True, slots=True)
class CancelHistoricalData:
    req_id: int


@dataclass(frozen=True, slots=True)
class ReqMktData:
    req_id: int
    contract: ContractReq
    generic_ticks: str
    snapshot: bool
    regulatory_snapshot: bool


@dataclass(frozen=True, slots=True)
class CancelMktData:
    req_id: int


@dataclass(frozen=True, slots=True)
class ReqMarketDataType:
    data_type: int


@dataclass(frozen=True, slots=True)
class ReqIds:
    num_ids: int


@dataclass(frozen=True, slots=True)
class ReqCurrentTime:
    pass


@dataclass(frozen=True, slots=True)
class ReqManagedAccts:
    pass


@dataclass(frozen=True, slots=True)
class ReqGlobalCancel:
    pass


Request = object


def _contract_details(r: FieldReader, v: int) -> ReqContractDetails:
    r.int("version")
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    inc = r.bool("includeExpired")
    r.str("secIdType")
    r.str("secId")
    return ReqContractDetails(req_id, c, inc)


def _historical(r: FieldReader, v: int) -> ReqHistoricalData:
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    inc = r.bool("includeExpired")
    end = r.str("endDateTime")
    bar = r.str("barSizeSetting")
    dur = r.str("durationStr")
    rth = r.bool("useRTH")
    wts = r.str("whatToShow")
    fmt = r.int("formatDate", 1)
    if c.sec_type == "BAG":
        n = r.int("comboLegCount")
        r.skip(4 * n, "comboLeg")
    keep = r.bool("keepUpToDate")
    return ReqHistoricalData(req_id, c, inc, end, bar, dur, rth, wts, fmt, keep)


def _mkt_data(r: FieldReader, v: int) -> ReqMktData:
    r.int("version")
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    if c.sec_type == "BAG":
        n = r.int("comboLegCount")
        r.skip(4 * n, "comboLeg")
    if r.bool("deltaNeutralContractPresent"):
        r.skip(3, "deltaNeutralContract")
    ticks = r.str("genericTickList")
    snap = r.bool("snapshot")
    reg = r.bool("regulatorySnapshot") if r.remaining else False
    return ReqMktData(req_id, c, ticks, snap, reg)


def _executions(r: FieldReader, v: int) -> ReqExecutions:
    r.int("version")
    return ReqExecutions(
        r.int("reqId"), r.int("clientId"), r.str("acctCode"), r.str("time"), r.str("symbol"),
        r.str("secType"), r.str("exchange"), r.str("side"),
    )  # fmt: skip


def _v(factory: Callable[[FieldReader], object]) -> Callable[[FieldReader, int], object]:
    """Decoder for a message whose first field is a version to ignore."""

    def dec(r: FieldReader, v: int) -> object:
        r.int("version")
        return factory(r)

    return dec


_DECODERS: dict[int, Callable[[FieldReader, int], object]] = {
    1: _mkt_data,
    2: _v(lambda r: CancelMktData(r.int("reqId"))),
    3: read_place_order,
    4: read_cancel_order,
    5: _v(lambda r: ReqOpenOrders(False)),
    6: _v(lambda r: ReqAccountUpdates(r.bool("subscribe"), r.str("acctCode"))),
    7: _executions,
    8: _v(lambda r: ReqIds(r.int("numIds"))),
    9: _contract_details,
    15: _v(lambda r: ReqAutoOpenOrders(r.bool("bAutoBind"))),
    16: _v(lambda r: ReqOpenOrders(True)),
    17: _v(lambda r: ReqManagedAccts()),
    20: _historical,
    25: _v(lambda r: CancelHistoricalData(r.int("reqId"))),
    49: _v(lambda r: ReqCurrentTime()),
    58: _v(lambda r: ReqGlobalCancel()),
    59: _v(lambda r: ReqMarketDataType(r.int("marketDataType"))),
    61: _v(lambda r: ReqPositions()),
    62: _v(lambda r: ReqAccountSummary(r.int("reqId"), r.str("groupName"), r.str("tags"))),
    63: _v(lambda r: CancelAccountSummary(r.int("reqId"))),
    64: _v(lambda r: CancelPositions()),
    71: _v(lambda r: StartApi(r.int("clientId"), r.str("optCapab") if r.remaining else "")),
    76: _v(lambda r: ReqAccountUpdatesMulti(r.int("reqId"), r.str("account"), r.str("modelCode"))),
    77: _v(lambda r: CancelAccountUpdatesMulti(r.int("reqId"))),
    99: lambda r, v: ReqCompletedOrders(r.bool("apiOnly")),
}


def decode_request(fields: list[str], server_version: int) -> object:
    """Decode one client message. Raises ``RequestError`` or ``UnknownMessage``."""
    if not fields or fields[0] == "":
        raise RequestError(None, "msgId", "", "empty message")
    try:
        msg_id = int(fields[0])
    except ValueError:
        raise RequestError(None, "msgId", fields[0], "expected an integer message id") from None
    dec = _DECODERS.get(msg_id)
    if dec is None:
        raise UnknownMessage(msg_id)
    return dec(FieldReader(fields[1:], msg_id), server_version)
