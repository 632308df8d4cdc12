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
    oca_type: int = 0
    what_if: "WhatIfState | None" = None
    """Set on the answer to a what-if order: the margins and commission it would cost."""


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
    order_types: str = "GTC,GTD,LMT,LOC,MKT,MOC,OCA,OPG,STP,STPLMT,WHATIF"
    """IB's names for what the exchange serves (``order_types.py``): STPLMT is STP LMT."""
    valid_exchanges: str = ""
    under_con_id: int = 0
    market_rule_ids: str = ""
    """Comma-separated market rule ids, one per valid exchange (see ``reqMarketRule``)."""


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
        o.oca_type, False, False, "",  # ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        o.parent_id, 0,  # parentId, triggerMethod
        "", "", "", "",  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
    ]  # fmt: skip
    f += [False, "", "", "", "", "", ""]  # continuousUpdate .. basisPointsType, comboLegsDescrip
    f += [0, 0, 0]  # comboLegCount, orderComboLegCount, smartComboRoutingParamsCount
    f += ["", "", ""]  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
    f += [""]  # hedgeType
    f += [False, "", "", False, 0]  # optOutSmartRouting, clearing acct/intent, notHeld, dncPresent
    f += [""]  # algoStrategy
    f += [False, o.what_if is not None, o.status]  # solicited, whatIf, status
    f += o.what_if.fields() if o.what_if is not None else [""] * 14  # margins, commissions, warning
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
        0, False, False, "", o.oca_type, 0,  # displaySize, sweepToFill, allOrNone, minQty, ocaType, triggerMethod
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
        "", "", "", d.market_rule_ids,  # aggGroup, underSymbol, underSecType, marketRuleIds
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


# ----- reference data, intraday data and streams (issue 9, part 1) --------------------------------
# Sizes and volumes go as integers: IB's own ``ibapi`` client parses them with int().

MARKET_DEPTH = 12
MARKET_DEPTH_L2 = 13
SCANNER_PARAMETERS = 19
REAL_TIME_BARS = 50
VERIFY_COMPLETED = 66
DISPLAY_GROUP_LIST = 67
VERIFY_AND_AUTH_COMPLETED = 70
POSITION_MULTI = 71
POSITION_MULTI_END = 72
SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
SOFT_DOLLAR_TIERS = 77
FAMILY_CODES = 78
SYMBOL_SAMPLES = 79
MKT_DEPTH_EXCHANGES = 80
SMART_COMPONENTS = 82
NEWS_PROVIDERS = 85
HISTORICAL_NEWS_END = 87
HEAD_TIMESTAMP = 88
HISTOGRAM_DATA = 89
HISTORICAL_DATA_UPDATE = 90
MARKET_RULE = 93
HISTORICAL_TICKS = 96
HISTORICAL_TICKS_BID_ASK = 97
HISTORICAL_TICKS_LAST = 98
TICK_BY_TICK = 99
HISTORICAL_SCHEDULE = 106
USER_INFO = 107


def scanner_parameters(xml: str) -> Fields:
    return [SCANNER_PARAMETERS, 1, xml]


def verify_completed(ok: bool, text: str) -> Fields:
    return [VERIFY_COMPLETED, 1, ok, text]


def verify_and_auth_completed(ok: bool, text: str) -> Fields:
    return [VERIFY_AND_AUTH_COMPLETED, 1, ok, text]


def display_group_list(req_id: int, groups: str) -> Fields:
    return [DISPLAY_GROUP_LIST, 1, req_id, groups]


def position_multi(req_id: int, account: str, c: WireContract, qty: float, avg_cost: float, model_code: str) -> Fields:
    return [POSITION_MULTI, 1, req_id, account, *c.fields11(), qty, avg_cost, model_code]


def position_multi_end(req_id: int) -> Fields:
    return [POSITION_MULTI_END, 1, req_id]


def sec_def_opt_params_end(req_id: int) -> Fields:
    return [SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id]


def soft_dollar_tiers(req_id: int) -> Fields:
    return [SOFT_DOLLAR_TIERS, req_id, 0]


def family_codes(pairs: Sequence[tuple[str, str]]) -> Fields:
    f: Fields = [FAMILY_CODES, len(pairs)]
    for account, code in pairs:
        f += [account, code]
    return f


@dataclass(frozen=True, slots=True)
class SymbolSample:
    con_id: int
    symbol: str
    sec_type: str
    primary_exchange: str
    currency: str
    derivative_sec_types: tuple[str, ...]
    description: str


def symbol_samples(req_id: int, rows: Sequence[SymbolSample], server_version: int) -> Fields:
    f: Fields = [SYMBOL_SAMPLES, req_id, len(rows)]
    for r in rows:
        f += [r.con_id, r.symbol, r.sec_type, r.primary_exchange, r.currency, len(r.derivative_sec_types),
              *r.derivative_sec_types]  # fmt: skip
        if server_version >= 176:
            f += [r.description, ""]  # description, issuerId
    return f


def mkt_depth_exchanges(rows: Sequence[tuple[str, str, str, str, int]]) -> Fields:
    """(exchange, secType, listingExch, serviceDataType, aggGroup) per row (server version >= 137)."""
    f: Fields = [MKT_DEPTH_EXCHANGES, len(rows)]
    for row in rows:
        f += list(row)
    return f


def smart_components(req_id: int) -> Fields:
    return [SMART_COMPONENTS, req_id, 0]


def news_providers() -> Fields:
    return [NEWS_PROVIDERS, 0]


def historical_news_end(req_id: int, has_more: bool = False) -> Fields:
    return [HISTORICAL_NEWS_END, req_id, has_more]


def head_timestamp(req_id: int, stamp: str) -> Fields:
    return [HEAD_TIMESTAMP, req_id, stamp]


def histogram_data(req_id: int, rows: Sequence[tuple[float, int]]) -> Fields:
    f: Fields = [HISTOGRAM_DATA, req_id, len(rows)]
    for price, count in rows:
        f += [price, int(count)]
    return f


def historical_data_update(req_id: int, bar_count: int, date: str, o: float, h: float, lo: float, c: float,
                           wap: float, volume: int) -> Fields:  # fmt: skip
    """One bar of a keepUpToDate stream: note the open, close, high, low order of this message."""
    return [HISTORICAL_DATA_UPDATE, req_id, int(bar_count), date, o, c, h, lo, wap, int(volume)]


def market_rule(rule_id: int, increments: Sequence[tuple[float, float]]) -> Fields:
    f: Fields = [MARKET_RULE, rule_id, len(increments)]
    for low_edge, increment in increments:
        f += [low_edge, increment]
    return f


def historical_ticks_midpoint(req_id: int, rows: Sequence[tuple[int, float]], done: bool = True) -> Fields:
    f: Fields = [HISTORICAL_TICKS, req_id, len(rows)]
    for t, price in rows:
        f += [int(t), 0, price, 0]
    return f + [done]


def historical_ticks_bid_ask(req_id: int, rows: Sequence[tuple[int, float, float, int, int]], done: bool = True) -> Fields:
    f: Fields = [HISTORICAL_TICKS_BID_ASK, req_id, len(rows)]
    for t, bid, ask, bid_size, ask_size in rows:
        f += [int(t), 0, bid, ask, int(bid_size), int(ask_size)]
    return f + [done]


def historical_ticks_last(req_id: int, rows: Sequence[tuple[int, float, int, str]], done: bool = True) -> Fields:
    f: Fields = [HISTORICAL_TICKS_LAST, req_id, len(rows)]
    for t, price, size, exchange in rows:
        f += [int(t), 0, price, int(size), exchange, ""]
    return f + [done]


def tick_by_tick_last(req_id: int, tick_type: int, t: int, price: float, size: int, exchange: str) -> Fields:
    """tickType 1 (Last) or 2 (AllLast)."""
    return [TICK_BY_TICK, req_id, tick_type, int(t), price, int(size), 0, exchange, ""]


def tick_by_tick_bid_ask(req_id: int, t: int, bid: float, ask: float, bid_size: int, ask_size: int) -> Fields:
    return [TICK_BY_TICK, req_id, 3, int(t), bid, ask, int(bid_size), int(ask_size), 0]


def tick_by_tick_midpoint(req_id: int, t: int, mid: float) -> Fields:
    return [TICK_BY_TICK, req_id, 4, int(t), mid]


def market_depth(req_id: int, position: int, operation: int, side: int, price: float, size: int) -> Fields:
    """operation 0 insert, 1 update, 2 delete; side 0 ask, 1 bid."""
    return [MARKET_DEPTH, 1, req_id, position, operation, side, price, int(size)]


def market_depth_l2(req_id: int, position: int, market_maker: str, operation: int, side: int, price: float,
                    size: int, smart: bool, server_version: int) -> Fields:  # fmt: skip
    f: Fields = [MARKET_DEPTH_L2, 1, req_id, position, market_maker, operation, side, price, int(size)]
    if server_version >= 146:
        f.append(smart)
    return f


def real_time_bar(req_id: int, t: int, o: float, h: float, lo: float, c: float, volume: int, wap: float,
                  count: int) -> Fields:  # fmt: skip
    return [REAL_TIME_BARS, 3, req_id, int(t), o, h, lo, c, int(volume), wap, int(count)]


def historical_schedule(req_id: int, start: str, end: str, time_zone: str,
                        sessions: Sequence[tuple[str, str, str]]) -> Fields:  # fmt: skip
    f: Fields = [HISTORICAL_SCHEDULE, req_id, start, end, time_zone, len(sessions)]
    for s in sessions:
        f += list(s)
    return f


def user_info(req_id: int, white_branding_id: str = "") -> Fields:
    return [USER_INFO, req_id, white_branding_id]


# ----- orders and P&L (issue 9, part 2) ----------------------------------------------------------

PNL = 94
PNL_SINGLE = 95


@dataclass(frozen=True, slots=True)
class WhatIfState:
    """The order state of a what-if answer: margins before / change / after, commission."""

    init_margin_before: float
    maint_margin_before: float
    equity_with_loan_before: float
    init_margin_change: float
    maint_margin_change: float
    equity_with_loan_change: float
    init_margin_after: float
    maint_margin_after: float
    equity_with_loan_after: float
    commission: float
    currency: str
    warning: str = ""

    def fields(self) -> Fields:
        """The 14 OPEN_ORDER fields from initMarginBefore to warningText (margins as IB: text)."""
        margins = (
            self.init_margin_before, self.maint_margin_before, self.equity_with_loan_before,
            self.init_margin_change, self.maint_margin_change, self.equity_with_loan_change,
            self.init_margin_after, self.maint_margin_after, self.equity_with_loan_after,
        )  # fmt: skip
        return [*(f"{m:.2f}" for m in margins), self.commission, self.commission, self.commission,
                self.currency, self.warning]  # fmt: skip


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> Fields:
    """PNL (no version field): the account's daily, unrealized and realized P&L."""
    return [PNL, req_id, daily, unrealized, realized]


def pnl_single(req_id: int, position: float, daily: float, unrealized: float, realized: float, value: float) -> Fields:
    """PNL_SINGLE (no version field): one position's P&L and market value."""
    return [PNL_SINGLE, req_id, position, daily, unrealized, realized, value]
