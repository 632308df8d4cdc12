"""Server -> client message encoders, one function per TWS message.

Each encoder returns the list of fields (message id first) for ``wire.encode_frame``. Layouts mirror
ib_async 2.1.0's ``decoder.py`` field for field, because a field out of place makes the client drop
the whole message silently; the unit tests feed every encoder's output back through that decoder.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

# Incoming message ids (server -> client).
TICK_PRICE = 1
TICK_SIZE = 2
ORDER_STATUS = 3
ERR_MSG = 4
OPEN_ORDER = 5
ACCT_VALUE = 6
PORTFOLIO_VALUE = 7
ACCT_UPDATE_TIME = 8
NEXT_VALID_ID = 9
CONTRACT_DATA = 10
EXECUTION_DATA = 11
MANAGED_ACCTS = 15
HISTORICAL_DATA = 17
CURRENT_TIME = 49
CONTRACT_DATA_END = 52
OPEN_ORDER_END = 53
ACCT_DOWNLOAD_END = 54
EXECUTION_DATA_END = 55
TICK_SNAPSHOT_END = 57
MARKET_DATA_TYPE = 58
COMMISSION_REPORT = 59
POSITION_DATA = 61
POSITION_END = 62
ACCOUNT_SUMMARY = 63
ACCOUNT_SUMMARY_END = 64
ACCOUNT_UPDATE_MULTI = 73
ACCOUNT_UPDATE_MULTI_END = 74
COMPLETED_ORDER = 101
COMPLETED_ORDERS_END = 102

Fields = list[object]


@dataclass(frozen=True, slots=True)
class WireContract:
    """A contract as the exchange describes it in positions, orders and executions."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date: str
    """``YYYYMMDD`` for a month, empty for CONTFUT."""
    multiplier: float
    exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    def fields11(self) -> Fields:
        """conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency,
        localSymbol, tradingClass: the block shared by OPEN_ORDER, EXECUTION_DATA and POSITION."""
        return [
            self.con_id,
            self.symbol,
            self.sec_type,
            self.last_trade_date,
            0.0,
            "",
            _mult(self.multiplier),
            self.exchange,
            self.currency,
            self.local_symbol,
            self.trading_class,
        ]


def _mult(m: float) -> str:
    return str(int(m)) if float(m).is_integer() else repr(float(m))


@dataclass(frozen=True, slots=True)
class OrderView:
    """What OPEN_ORDER reports about one order."""

    order_id: int
    client_id: int
    perm_id: int
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None
    tif: str
    account: str
    order_ref: str
    status: str
    outside_rth: bool = False
    good_till_date: str = ""
    parent_id: int = 0
    oca_group: str = ""
    aux_price: float | None = None


@dataclass(frozen=True, slots=True)
class ExecutionView:
    """One execution as EXECUTION_DATA carries it."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    time: dt.datetime
    account: str
    exchange: str
    side: str
    """``BOT`` or ``SLD``."""
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    order_ref: str


@dataclass(frozen=True, slots=True)
class ContractDetailsView:
    """Fields of CONTRACT_DATA beyond the contract itself."""

    contract: WireContract
    market_name: str
    min_tick: float
    long_name: str
    contract_month: str
    time_zone_id: str
    trading_hours: str
    liquid_hours: str
    real_expiration_date: str
    order_types: str = "LMT,MKT"
    valid_exchanges: str = ""
    under_con_id: int = 0


def ib_time(t: dt.datetime) -> str:
    """``YYYYMMDD HH:MM:SS UTC``, the form ib_async parses with a zone."""
    return t.astimezone(dt.timezone.utc).strftime("%Y%m%d %H:%M:%S UTC")


def managed_accounts(accounts: Sequence[str]) -> Fields:
    return [MANAGED_ACCTS, 1, ",".join(accounts)]


def next_valid_id(order_id: int) -> Fields:
    return [NEXT_VALID_ID, 1, order_id]


def error(req_id: int, code: int, text: str, server_version: int) -> Fields:
    fields: Fields = [ERR_MSG, 2, req_id, code, text]
    if server_version >= 166:
        fields.append("")  # advancedOrderRejectJson
    return fields


def current_time(t: dt.datetime) -> Fields:
    return [CURRENT_TIME, 1, int(t.timestamp())]


def position(account: str, c: WireContract, qty: float, avg_cost: float) -> Fields:
    return [POSITION_DATA, 3, account, *c.fields11(), qty, avg_cost]


def position_end() -> Fields:
    return [POSITION_END, 1]


def account_value(key: str, value: str, currency: str, account: str) -> Fields:
    return [ACCT_VALUE, 2, key, value, currency, account]


def portfolio_value(
    c: WireContract,
    qty: float,
    market_price: float,
    market_value: float,
    avg_cost: float,
    unrealized: float,
    realized: float,
    account: str,
) -> Fields:
    return [
        PORTFOLIO_VALUE, 8, c.con_id, c.symbol, c.sec_type, c.last_trade_date, 0.0, "",
        _mult(c.multiplier), c.exchange, c.currency, c.local_symbol, c.trading_class,
        qty, market_price, market_value, avg_cost, unrealized, realized, account,
    ]  # fmt: skip


def account_update_time(t: dt.datetime) -> Fields:
    return [ACCT_UPDATE_TIME, 1, t.astimezone(dt.timezone.utc).strftime("%H:%M")]


def account_download_end(account: str) -> Fields:
    return [ACCT_DOWNLOAD_END, 1, account]


def account_update_multi(req_id: int, account: str, key: str, value: str, currency: str) -> Fields:
    return [ACCOUNT_UPDATE_MULTI, 1, req_id, account, "", key, value, currency]


def account_update_multi_end(req_id: int) -> Fields:
    return [ACCOUNT_UPDATE_MULTI_END, 1, req_id]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> Fields:
    return [ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> Fields:
    return [ACCOUNT_SUMMARY_END, 1, req_id]


def order_status(
    order_id: int,
    status: str,
    filled: float,
    remaining: float,
    avg_fill_price: float,
    perm_id: int,
    last_fill_price: float,
    client_id: int,
    parent_id: int = 0,
) -> Fields:
    return [
        ORDER_STATUS, order_id, status, filled, remaining, avg_fill_price, perm_id, parent_id,
        last_fill_price, client_id, "", 0.0,
    ]  # fmt: skip


def open_order(c: WireContract, o: OrderView, server_version: int) -> Fields:
    """OPEN_ORDER for a plain (non-combo, non-algo) order; mirrors ``Decoder.openOrder``."""
    f: Fields = [OPEN_ORDER, o.order_id, *c.fields11()]
    f += [
        o.action, o.total_qty, o.order_type, o.lmt_price, o.aux_price, o.tif, o.oca_group,
        o.account, "O", 0, o.order_ref, o.client_id, o.perm_id, o.outside_rth, False,
        0.0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # deprecated sharesAllocation
        "", "", "",  # faGroup, faMethod, faPercentage
    ]  # fmt: skip
    if server_version < 177:
        f.append("")  # faProfile
    f += [
        "",  # modelCode
        o.good_till_date,
        "", "",  # rule80A, percentOffset
        "", 0, "", -1,  # settlingFirm, shortSaleSlot, designatedLocation, exemptCode
        0, "", "", "", "", "",  # auctionStrategy, startingPrice, stockRefPrice, delta, range lo/hi
        0, False, False, False, "",  # displaySize, blockOrder, sweepToFill, allOrNone, minQty
        0, False, False, "",  # ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        o.parent_id, 0,  # parentId, triggerMethod
        "", "", "", "",  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
    ]  # fmt: skip
    f += [False, "", "", "", "", "", ""]  # continuousUpdate .. basisPointsType, comboLegsDescrip
    f += [0, 0, 0]  # comboLegCount, orderComboLegCount, smartComboRoutingParamsCount
    f += ["", "", ""]  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
    f += [""]  # hedgeType
    f += [False, "", "", False, 0]  # optOutSmartRouting, clearing acct/intent, notHeld, dncPresent
    f += [""]  # algoStrategy
    f += [False, False, o.status]  # solicited, whatIf, status
    f += [""] * 9  # margins before/change/after
    f += ["", "", "", "", ""]  # commission, min, max, commissionCurrency, warningText
    f += [False, False]  # randomizeSize, randomizePrice
    f += [0]  # conditionCount
    f += [
        "", "", "", "", "", "", "", 0,  # adjusted* fields, adjustableTrailingUnit
        "", "", "",  # softDollarTier name, val, displayName
        "", False, False, False, "",  # cashQty .. usePriceMgmtAlgo
    ]  # fmt: skip
    if server_version >= 159:
        f.append("")  # duration
    if server_version >= 160:
        f.append("")  # postToAts
    if server_version >= 162:
        f.append(False)  # autoCancelParent
    if server_version >= 170:
        f += ["", "", "", "", ""]  # minTradeQty .. midOffsetAtHalf
    return f


def open_order_end() -> Fields:
    return [OPEN_ORDER_END, 1]


def completed_order(c: WireContract, o: OrderView, filled: float, completed: dt.datetime, server_version: int) -> Fields:
    """COMPLETED_ORDER (only ever in answer to reqCompletedOrders); mirrors ``Decoder.completedOrder``."""
    f: Fields = [COMPLETED_ORDER, *c.fields11()]
    f += [
        o.action, o.total_qty, o.order_type, o.lmt_price, o.aux_price, o.tif, o.oca_group, o.account,
        "O", 0, o.order_ref, o.perm_id, o.outside_rth, False, 0.0, "", "", "", "",
    ]  # fmt: skip
    if server_version < 177:
        f.append("")  # faProfile
    f += [
        "", o.good_till_date, "", "", "", 0, "", -1,  # modelCode .. exemptCode
        "", "", "", "", "",  # startingPrice, stockRefPrice, delta, stockRangeLower/Upper
        0, False, False, "", 0, 0,  # displaySize, sweepToFill, allOrNone, minQty, ocaType, triggerMethod
        "", "", "", "",  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
    ]  # fmt: skip
    f += [False, "", "", "", ""]  # continuousUpdate, referencePriceType, trailStop, trailingPct, comboDescrip
    f += [0, 0, 0]  # comboLegCount, orderComboLegCount, smartComboRoutingParamsCount
    f += ["", "", ""]  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
    f += [""]  # hedgeType
    f += ["", "", False, 0]  # clearingAccount, clearingIntent, notHeld, dncPresent
    f += [""]  # algoStrategy
    f += [False, o.status, False, False]  # solicited, status, randomizeSize, randomizePrice
    f += [0]  # conditionCount
    f += [
        "", "", "", False, False, "", filled, 0, False, "", False, False, 0,  # trailStopPrice .. parentPermId
        ib_time(completed), o.status,  # completedTime, completedStatus
    ]  # fmt: skip
    if server_version >= 170:
        f += ["", "", "", "", ""]
    return f


def completed_orders_end() -> Fields:
    return [COMPLETED_ORDERS_END]


def execution_data(req_id: int, c: WireContract, e: ExecutionView, server_version: int) -> Fields:
    f: Fields = [EXECUTION_DATA, req_id, e.order_id, *c.fields11()]
    f += [
        e.exec_id, ib_time(e.time), e.account, e.exchange, e.side, e.shares, e.price, e.perm_id,
        e.client_id, 0, e.cum_qty, e.avg_price, e.order_ref, "", "", "", 0,
    ]  # fmt: skip
    if server_version >= 178:
        f.append(False)  # pendingPriceRevision
    return f


def execution_data_end(req_id: int) -> Fields:
    return [EXECUTION_DATA_END, 1, req_id]


def commission_report(exec_id: str, commission: float, currency: str, realized_pnl: float) -> Fields:
    return [COMMISSION_REPORT, 1, exec_id, commission, currency, realized_pnl, "", ""]


def contract_data(req_id: int, d: ContractDetailsView, server_version: int) -> Fields:
    c = d.contract
    f: Fields = [CONTRACT_DATA]
    if server_version < 164:
        f.append(8)
    f += [
        req_id, c.symbol, c.sec_type, c.last_trade_date, 0.0, "", c.exchange, c.currency,
        c.local_symbol, d.market_name, c.trading_class, c.con_id, d.min_tick,
    ]  # fmt: skip
    if server_version < 164:
        f.append("")  # mdSizeMultiplier
    f += [
        _mult(c.multiplier), d.order_types, d.valid_exchanges or c.exchange, 1, d.under_con_id,
        d.long_name, c.exchange, d.contract_month, "", "", "", d.time_zone_id, d.trading_hours,
        d.liquid_hours, "", "", 0,  # evRule, evMultiplier, secIdCount
        "", "", "", "",  # aggGroup, underSymbol, underSecType, marketRuleIds
        d.real_expiration_date, "",  # realExpirationDate, stockType
    ]  # fmt: skip
    if server_version == 163:
        f.append(1)
    if server_version >= 164:
        f += [1, 1, 1]  # minSize, sizeIncrement, suggestedSizeIncrement
    return f


def contract_data_end(req_id: int) -> Fields:
    return [CONTRACT_DATA_END, 1, req_id]


def historical_data(
    req_id: int,
    start: str,
    end: str,
    bars: Sequence[tuple[str, float, float, float, float, int, float, int]],
) -> Fields:
    """Bars as (date, open, high, low, close, volume, wap, barCount); volumes go as integers."""
    f: Fields = [HISTORICAL_DATA, req_id, start, end, len(bars)]
    for date, o, h, lo, c, v, wap, n in bars:
        f += [date, o, h, lo, c, int(v), wap, int(n)]
    return f


def market_data_type(req_id: int, data_type: int) -> Fields:
    return [MARKET_DATA_TYPE, 1, req_id, data_type]


def tick_price(req_id: int, tick_type: int, price: float, size: float, attr_mask: int = 0) -> Fields:
    return [TICK_PRICE, 6, req_id, tick_type, price, size, attr_mask]


def tick_size(req_id: int, tick_type: int, size: float) -> Fields:
    return [TICK_SIZE, 6, req_id, tick_type, size]


def tick_snapshot_end(req_id: int) -> Fields:
    return [TICK_SNAPSHOT_END, 1, req_id]
