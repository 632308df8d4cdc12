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


# ----- reference data, intraday data and streams (issue 9) -----------------------------------------

@dataclass(frozen=True, slots=True)
class ReqMktDepth:
    req_id: int
    contract: ContractReq
    num_rows: int
    smart_depth: bool


@dataclass(frozen=True, slots=True)
class ReqRealTimeBars:
    req_id: int
    contract: ContractReq
    bar_size: int
    what_to_show: str
    use_rth: bool


@dataclass(frozen=True, slots=True)
class ReqHeadTimeStamp:
    req_id: int
    contract: ContractReq
    include_expired: bool
    use_rth: bool
    what_to_show: str
    format_date: int


@dataclass(frozen=True, slots=True)
class ReqHistogramData:
    req_id: int
    contract: ContractReq
    include_expired: bool
    use_rth: bool
    period: str


@dataclass(frozen=True, slots=True)
class ReqHistoricalTicks:
    req_id: int
    contract: ContractReq
    include_expired: bool
    start: str
    end: str
    number_of_ticks: int
    what_to_show: str
    use_rth: bool
    ignore_size: bool


@dataclass(frozen=True, slots=True)
class ReqTickByTick:
    req_id: int
    contract: ContractReq
    tick_type: str
    number_of_ticks: int
    ignore_size: bool


@dataclass(frozen=True, slots=True)
class ReqMatchingSymbols:
    req_id: int
    pattern: str


@dataclass(frozen=True, slots=True)
class ReqMarketRule:
    market_rule_id: int


@dataclass(frozen=True, slots=True)
class ReqSecDefOptParams:
    req_id: int
    underlying_symbol: str
    fut_fop_exchange: str
    underlying_sec_type: str
    underlying_con_id: int


@dataclass(frozen=True, slots=True)
class ReqPositionsMulti:
    req_id: int
    account: str
    model_code: str


@dataclass(frozen=True, slots=True)
class ReqPnL:
    """reqPnL: decoded here, answered by the P&L streams."""

    req_id: int
    account: str
    model_code: str


@dataclass(frozen=True, slots=True)
class ReqPnLSingle:
    """reqPnLSingle: decoded here, answered by the P&L streams."""

    req_id: int
    account: str
    model_code: str
    con_id: int


@dataclass(frozen=True, slots=True)
class CancelPnL:
    req_id: int


@dataclass(frozen=True, slots=True)
class CancelPnLSingle:
    req_id: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """A cancel of a subscription or pending request (``kind`` names what it cancels)."""

    kind: str
    req_id: int


@dataclass(frozen=True, slots=True)
class SetServerLogLevel:
    level: int


@dataclass(frozen=True, slots=True)
class OtherRequest:
    """A request the exchange decodes but answers from ``request_policy`` (a reply with no data,
    IB's error for it, or nothing until an event), e.g. fundamentals, scanners, news, FA."""

    msg_id: int
    name: str
    req_id: int | None
    """The request's own id (the error goes there); None for requests that carry none."""


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


def _mkt_depth(r: FieldReader, v: int) -> ReqMktDepth:
    r.int("version")
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    rows = r.int("numRows")
    smart = r.bool("isSmartDepth") if r.remaining else False
    return ReqMktDepth(req_id, c, rows, smart)


def _real_time_bars(r: FieldReader, v: int) -> ReqRealTimeBars:
    r.int("version")
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    return ReqRealTimeBars(req_id, c, r.int("barSize"), r.str("whatToShow"), r.bool("useRTH"))


def _head_time_stamp(r: FieldReader, v: int) -> ReqHeadTimeStamp:
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    return ReqHeadTimeStamp(req_id, c, r.bool("includeExpired"), r.bool("useRTH"), r.str("whatToShow"),
                            r.int("formatDate", 1))  # fmt: skip


def _histogram(r: FieldReader, v: int) -> ReqHistogramData:
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    return ReqHistogramData(req_id, c, r.bool("includeExpired"), r.bool("useRTH"), r.str("timePeriod"))


def _historical_ticks(r: FieldReader, v: int) -> ReqHistoricalTicks:
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    return ReqHistoricalTicks(
        req_id, c, r.bool("includeExpired"), r.str("startDateTime"), r.str("endDateTime"),
        r.int("numberOfTicks"), r.str("whatToShow"), r.bool("useRth"), r.bool("ignoreSize"),
    )  # fmt: skip


def _tick_by_tick(r: FieldReader, v: int) -> ReqTickByTick:
    req_id = r.int("reqId")
    c = ContractReq.read(r)
    tick_type = r.str("tickType")
    n = r.int("numberOfTicks") if r.remaining else 0
    ignore = r.bool("ignoreSize") if r.remaining else False
    return ReqTickByTick(req_id, c, tick_type, n, ignore)


def _other(msg_id: int, name: str, id_field: str | None, versioned: bool = True) -> Callable[[FieldReader, int], object]:
    """Decoder of a request answered from ``request_policy``: only its id matters."""

    def dec(r: FieldReader, v: int) -> object:
        if versioned:
            r.int("version")
        return OtherRequest(msg_id, name, r.int(id_field) if id_field else None)

    return dec


def _cancel(kind: str, versioned: bool) -> Callable[[FieldReader, int], object]:
    def dec(r: FieldReader, v: int) -> object:
        if versioned:
            r.int("version")
        return Cancel(kind, r.int("reqId"))

    return dec


def _replace_fa(r: FieldReader, v: int) -> object:
    r.int("version")
    r.int("faDataType")
    r.str("cxml")
    return OtherRequest(19, "replaceFA", r.int("reqId") if r.remaining else None)


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
    # market depth, news bulletins, log level, FA
    10: _mkt_depth,
    11: _cancel("mktDepth", True),
    12: _other(12, "reqNewsBulletins", None),
    13: _other(13, "cancelNewsBulletins", None),
    14: _v(lambda r: SetServerLogLevel(r.int("logLevel"))),
    18: _other(18, "requestFA", None),
    19: _replace_fa,
    # options, scanners, fundamentals: not listed on a futures-only exchange
    21: _other(21, "exerciseOptions", "reqId"),
    22: _other(22, "reqScannerSubscription", "reqId", versioned=False),
    23: _cancel("scanner", True),
    24: _other(24, "reqScannerParameters", None),
    50: _real_time_bars,
    51: _cancel("realTimeBars", True),
    52: _other(52, "reqFundamentalData", "reqId"),
    53: _cancel("fundamentalData", True),
    54: _other(54, "calculateImpliedVolatility", "reqId"),
    55: _other(55, "calculateOptionPrice", "reqId"),
    56: _cancel("calculateImpliedVolatility", True),
    57: _cancel("calculateOptionPrice", True),
    # API verification and display groups (TWS features without a gateway counterpart here)
    65: _other(65, "verifyRequest", None),
    66: _other(66, "verifyMessage", None),
    67: _other(67, "queryDisplayGroups", "reqId"),
    68: _other(68, "subscribeToGroupEvents", "reqId"),
    69: _other(69, "updateDisplayGroup", "reqId"),
    70: _cancel("groupEvents", True),
    72: _other(72, "verifyAndAuthRequest", None),
    73: _other(73, "verifyAndAuthMessage", None),
    74: _v(lambda r: ReqPositionsMulti(r.int("reqId"), r.str("account"), r.str("modelCode"))),
    75: _cancel("positionsMulti", True),
    # reference data
    78: lambda r, v: ReqSecDefOptParams(r.int("reqId"), r.str("underlyingSymbol"), r.str("futFopExchange"),
                                       r.str("underlyingSecType"), r.int("underlyingConId")),  # fmt: skip
    79: _other(79, "reqSoftDollarTiers", "reqId", versioned=False),
    80: _other(80, "reqFamilyCodes", None, versioned=False),
    81: lambda r, v: ReqMatchingSymbols(r.int("reqId"), r.str("pattern")),
    82: _other(82, "reqMktDepthExchanges", None, versioned=False),
    83: _other(83, "reqSmartComponents", "reqId", versioned=False),
    84: _other(84, "reqNewsArticle", "reqId", versioned=False),
    85: _other(85, "reqNewsProviders", None, versioned=False),
    86: _other(86, "reqHistoricalNews", "reqId", versioned=False),
    87: _head_time_stamp,
    88: _histogram,
    89: _cancel("histogramData", False),
    90: _cancel("headTimeStamp", False),
    91: lambda r, v: ReqMarketRule(r.int("marketRuleId")),
    92: lambda r, v: ReqPnL(r.int("reqId"), r.str("account"), r.str("modelCode")),
    93: lambda r, v: CancelPnL(r.int("reqId")),
    94: lambda r, v: ReqPnLSingle(r.int("reqId"), r.str("account"), r.str("modelCode"), r.int("conId")),
    95: lambda r, v: CancelPnLSingle(r.int("reqId")),
    96: _historical_ticks,
    97: _tick_by_tick,
    98: _cancel("tickByTick", False),
    100: _other(100, "reqWshMetaData", "reqId", versioned=False),
    101: _cancel("wshMetaData", False),
    102: _other(102, "reqWshEventData", "reqId", versioned=False),
    103: _cancel("wshEventData", False),
    104: _other(104, "reqUserInfo", "reqId", versioned=False),
}

REQ_ID_FIELD: dict[int, int] = {
    1: 2, 2: 2, 3: 1, 4: 2, 7: 2, 9: 2, 10: 2, 11: 2, 19: 4, 20: 1, 21: 2, 22: 1, 23: 2, 25: 2, 50: 2,
    51: 2, 52: 2, 53: 2, 54: 2, 55: 2, 56: 2, 57: 2, 62: 2, 63: 2, 67: 2, 68: 2, 69: 2, 70: 2, 74: 2,
    75: 2, 76: 2, 77: 2, 78: 1, 79: 1, 81: 1, 83: 1, 84: 1, 86: 1, 87: 1, 88: 1, 89: 1, 90: 1, 92: 1,
    93: 1, 94: 1, 95: 1, 96: 1, 97: 1, 98: 1, 100: 1, 101: 1, 102: 1, 103: 1, 104: 1,
}  # fmt: skip
"""Field index (message id at 0) of each request's own request/order id, so an error about a
request that cannot be decoded still reaches the request it belongs to."""


def request_id_of(fields: list[str]) -> int:
    """The id a bad request's error should carry (so the client ends that request), else -1."""
    try:
        return int(fields[REQ_ID_FIELD[int(fields[0])]])
    except (KeyError, IndexError, ValueError):
        return -1


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
