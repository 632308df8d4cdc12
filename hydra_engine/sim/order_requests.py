"""Decoder of ``placeOrder`` and ``cancelOrder``: the longest client message, on its own.

``placeOrder`` mirrors ib_async 2.1.0's ``client.placeOrder`` because optional blocks shift every
field that follows them; it reads as far as the simulator needs and flags features it does not
simulate (combo, algo, scale...) in ``unsupported``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .request_fields import ContractReq, FieldReader


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
    oca_type: int = 0
    """1 cancel the rest with block, 2 reduce the rest with block, 3 reduce without block."""


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: int


def read_place_order(r: FieldReader, v: int) -> PlaceOrder:
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
    oca_type = r.int("ocaType", 0)
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
        "; ".join(unsupported), oca_type or 0,
    )  # fmt: skip


def read_cancel_order(r: FieldReader, v: int) -> CancelOrder:
    r.int("version")
    return CancelOrder(r.int("orderId"))
