"""Client -> server request decoders.

Each decoder reads its message sequentially with a ``FieldReader`` that names the field it was
reading when something is wrong, so a garbage value produces a clear log line and an IB-style
error (320) instead of a crash. ``placeOrder`` mirrors ib_async 2.1.0's ``client.placeOrder``
because optional blocks shift every field that follows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INTEGER = 2**31 - 1


class RequestError(ValueError):
    """A request that cannot be decoded. ``msg_id`` and ``field`` name what was wrong."""

    def __init__(self, msg_id: int | None, field: str, value: str, reason: str) -> None:
        super().__init__(f"message {msg_id}: field {field!r} = {value[:40]!r}: {reason}")
        self.msg_id = msg_id
        self.field = field
        self.value = value
        self.reason = reason


class UnknownMessage(ValueError):
    """A message id the exchange does not serve."""

    def __init__(self, msg_id: int) -> None:
        super().__init__(f"unknown message id {msg_id}")
        self.msg_id = msg_id


class FieldReader:
    """Sequential typed access to one message's fields."""

    def __init__(self, fields: list[str], msg_id: int | None = None) -> None:
        self._f = fields
        self._i = 0
        self.msg_id = msg_id

    def _next(self, name: str) -> str:
        if self._i >= len(self._f):
            raise RequestError(self.msg_id, name, "", f"message ended after {len(self._f)} fields")
        v = self._f[self._i]
        self._i += 1
        return v

    def str(self, name: str) -> str:
        return self._next(name)

    def int(self, name: str, default: int = 0) -> int:
        v = self._next(name)
        if v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise RequestError(self.msg_id, name, v, "expected an integer") from None

    def float(self, name: str) -> float | None:
        """None for an empty field or IB's 'unset' marker."""
        v = self._next(name)
        if v == "":
            return None
        if v == "Infinite":
            return math.inf
        try:
            x = float(v)
        except ValueError:
            raise RequestError(self.msg_id, name, v, "expected a number") from None
        if math.isnan(x):
            raise RequestError(self.msg_id, name, v, "NaN is not a price or size")
        return None if x >= UNSET_DOUBLE else x

    def bool(self, name: str) -> bool:
        v = self._next(name)
        if v in ("", "0", "false", "False"):
            return False
        if v in ("1", "true", "True"):
            return True
        try:
            return bool(int(v))
        except ValueError:
            raise RequestError(self.msg_id, name, v, "expected 0 or 1") from None

    def skip(self, n: int, name: str) -> None:
        for k in range(n):
            self._next(f"{name}[{k}]")

    @property
    def remaining(self) -> int:
        return len(self._f) - self._i


@dataclass(frozen=True, slots=True)
class ContractReq:
    """The 12-field contract block a client sends."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date_or_month: str
    strike: float | None
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    @staticmethod
    def read(r: FieldReader) -> "ContractReq":
        return ContractReq(
            r.int("contract.conId"),
            r.str("contract.symbol"),
            r.str("contract.secType"),
            r.str("contract.lastTradeDateOrContractMonth"),
            r.float("contract.strike"),
            r.str("contract.right"),
            r.str("contract.multiplier"),
            r.str("contract.exchange"),
            r.str("contract.primaryExchange"),
            r.str("contract.currency"),
            r.str("contract.localSymbol"),
            r.str("contract.tradingClass"),
        )

    def describe(self) -> str:
        parts = [self.sec_type or "?", self.symbol or self.local_symbol or f"conId={self.con_id}"]
        if self.last_trade_date_or_month:
            parts.append(self.last_trade_date_or_month)
        if self.exchange:
            parts.append(self.exchange)
        return " ".join(parts)


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
class PlaceOrder:
    order_id: int
    contract: ContractReq
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    good_after_time: str
    good_till_date: str
    what_if: bool
    unsupported: str
    """Non-empty when the order uses a feature the exchange does not simulate (combo, algo...)."""


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: int


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


def _place_order(r: FieldReader, v: int) -> PlaceOrder:
    """Mirror of ib_async ``Client.placeOrder``; reads as far as the simulator needs."""
    order_id = r.int("orderId")
    c = ContractReq.read(r)
    r.str("secIdType")
    r.str("secId")
    action = r.str("action")
    qty = r.float("totalQuantity")
    order_type = r.str("orderType")
    lmt = r.float("lmtPrice")
    aux = r.float("auxPrice")
    tif = r.str("tif")
    oca = r.str("ocaGroup")
    account = r.str("account")
    r.str("openClose")
    r.int("origin")
    order_ref = r.str("orderRef")
    transmit = r.bool("transmit")
    parent_id = r.int("parentId")
    r.bool("blockOrder")
    r.bool("sweepToFill")
    r.int("displaySize")
    r.int("triggerMethod")
    outside_rth = r.bool("outsideRth")
    r.bool("hidden")
    unsupported: list[str] = []
    if c.sec_type == "BAG":
        unsupported.append("combo (BAG) orders")
        n = r.int("comboLegCount")
        r.skip(8 * n, "comboLeg")
        n = r.int("orderComboLegCount")
        r.skip(n, "orderComboLeg")
        n = r.int("smartComboRoutingParamsCount")
        r.skip(2 * n, "smartComboRoutingParam")
    r.str("sharesAllocation")
    r.float("discretionaryAmt")
    good_after = r.str("goodAfterTime")
    good_till = r.str("goodTillDate")
    r.skip(3, "fa")
    if v < 177:
        r.str("faProfile")
    r.str("modelCode")
    r.int("shortSaleSlot")
    r.str("designatedLocation")
    r.int("exemptCode")
    r.int("ocaType")
    r.skip(2, "rule80A/settlingFirm")
    r.bool("allOrNone")
    r.int("minQty")
    r.float("percentOffset")
    r.skip(2, "eTradeOnly/firmQuoteOnly")
    r.float("nbboPriceCap")
    r.int("auctionStrategy")
    for name in ("startingPrice", "stockRefPrice", "delta", "stockRangeLower", "stockRangeUpper"):
        r.float(name)
    r.bool("overridePercentageConstraints")
    r.float("volatility")
    r.int("volatilityType")
    dn_type = r.str("deltaNeutralOrderType")
    r.float("deltaNeutralAuxPrice")
    if dn_type:
        unsupported.append("delta-neutral orders")
        r.skip(8, "deltaNeutral")
    r.bool("continuousUpdate")
    r.int("referencePriceType")
    r.float("trailStopPrice")
    r.float("trailingPercent")
    r.int("scaleInitLevelSize")
    r.int("scaleSubsLevelSize")
    incr = r.float("scalePriceIncrement")
    if incr is not None and 0 < incr:
        unsupported.append("scale orders")
        r.skip(7, "scale")
    r.str("scaleTable")
    r.str("activeStartTime")
    r.str("activeStopTime")
    hedge = r.str("hedgeType")
    if hedge:
        unsupported.append("hedge orders")
        r.str("hedgeParam")
    r.bool("optOutSmartRouting")
    r.str("clearingAccount")
    r.str("clearingIntent")
    r.bool("notHeld")
    if r.bool("deltaNeutralContractPresent"):
        r.skip(3, "deltaNeutralContract")
    algo = r.str("algoStrategy")
    if algo:
        unsupported.append(f"algo {algo!r}")
        n = r.int("algoParamsCount")
        r.skip(2 * n, "algoParam")
    r.str("algoId")
    what_if = r.bool("whatIf")
    r.str("orderMiscOptions")
    r.bool("solicited")
    r.bool("randomizeSize")
    r.bool("randomizePrice")
    if order_type in ("PEG BENCH", "PEGBENCH"):
        r.skip(5, "pegBench")
    if r.int("conditionsCount"):
        unsupported.append("order conditions")
    # The remaining fields (adjusted orders, MiFID II, version-dependent tail) change nothing here.
    return PlaceOrder(
        order_id, c, action, 0.0 if qty is None else qty, order_type, lmt, aux, tif, oca, account,
        order_ref, transmit, parent_id, outside_rth, good_after, good_till, what_if,
        "; ".join(unsupported),
    )  # fmt: skip


def _cancel_order(r: FieldReader, v: int) -> CancelOrder:
    r.int("version")
    return CancelOrder(r.int("orderId"))


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
    3: _place_order,
    4: _cancel_order,
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
