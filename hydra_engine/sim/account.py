"""One simulated futures account: cash, positions with IB-style average cost, commissions, values.

Futures accounting as a broker reports it: no notional changes hands on a fill; cash moves by
realized P&L and commissions; net liquidation is cash plus the open positions' unrealized P&L.
Average cost follows IB: per contract *including* the multiplier (CL at 75.00 -> 75000.0).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

COMMISSION_PER_CONTRACT = 2.25
"""USD per contract per fill, roughly IB's tiered futures commission plus exchange fees."""
INITIAL_MARGIN_RATE = 0.10
"""Initial margin as a fraction of notional (a simple stand-in for SPAN)."""
MAINT_MARGIN_RATE = 0.08


@dataclass(slots=True)
class PositionState:
    """Open position in one contract month (mutable book entry)."""

    con_id: int
    qty: float
    """Signed contracts: positive long, negative short."""
    avg_cost: float
    """Per contract, including the multiplier (IB's convention)."""
    multiplier: float
    realized_pnl: float = 0.0


@dataclass(slots=True)
class DayLedger:
    """One contract's trading on one trade date: what reqPnL's daily figures are computed from.

    Daily P&L of the contract = position now x mark - position at the start of the day x previous
    close - ``cash_flow`` - ``commissions`` (all x multiplier where prices are involved)."""

    trade_date: dt.date
    start_qty: float
    """Signed position before the day's first fill."""
    cash_flow: float = 0.0
    """Sum of signed quantity x price x multiplier of the day's fills (a buy adds)."""
    commissions: float = 0.0
    realized: float = 0.0
    """Realized P&L of the day's fills, before commissions."""


@dataclass(frozen=True, slots=True)
class FillAccounting:
    """What one fill did to the account."""

    commission: float
    realized_pnl: float
    """Realized on the closed part, net of nothing (commission reported separately)."""
    position_after: float


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Account values at a set of marks; units: account currency."""

    account: str
    currency: str
    net_liquidation: float
    total_cash: float
    gross_position_value: float
    """IB's GrossPositionValue: stocks and options only, so always 0.0 for this futures-only account
    (a real paper account holding futures reports 0 too). Futures exposure is ``futures_notional``."""
    unrealized_pnl: float
    realized_pnl: float
    init_margin: float
    maint_margin: float
    available_funds: float
    excess_liquidity: float
    futures_notional: float
    """Sum of |qty x price x multiplier| over open positions; the base of the margin stand-in. Not an
    IB account tag: a client wanting notional computes it from positions and marks, as with IB."""

    def as_tags(self) -> dict[str, float]:
        """IB account tags (reqAccountSummary / reqAccountUpdates keys)."""
        return {
            "NetLiquidation": self.net_liquidation,
            "TotalCashValue": self.total_cash,
            "CashBalance": self.total_cash,
            "SettledCash": self.total_cash,
            "GrossPositionValue": self.gross_position_value,
            "EquityWithLoanValue": self.net_liquidation,
            "InitMarginReq": self.init_margin,
            "FullInitMarginReq": self.init_margin,
            "MaintMarginReq": self.maint_margin,
            "FullMaintMarginReq": self.maint_margin,
            "AvailableFunds": self.available_funds,
            "FullAvailableFunds": self.available_funds,
            "ExcessLiquidity": self.excess_liquidity,
            "FullExcessLiquidity": self.excess_liquidity,
            "BuyingPower": max(self.available_funds, 0.0),
            "UnrealizedPnL": self.unrealized_pnl,
            "RealizedPnL": self.realized_pnl,
        }


class Account:
    """Cash and positions of one account id (``DU...``)."""

    def __init__(self, account_id: str, starting_cash: float, currency: str = "USD") -> None:
        self.account_id = account_id
        self.currency = currency
        self.cash = float(starting_cash)
        self.realized_pnl = 0.0
        self.commissions = 0.0
        self.positions: dict[int, PositionState] = {}
        self.day: dict[int, DayLedger] = {}
        """Per conId, the trading of its latest trade date with fills (for the P&L streams)."""

    def apply_fill(self, con_id: int, side: str, qty: float, price: float, multiplier: float,
                   trade_date: dt.date | None = None) -> FillAccounting:  # fmt: skip
        """Book one execution. ``side`` is BUY/SELL (or BOT/SLD), ``price`` per unit; ``trade_date``
        (the session's) feeds the day ledger the P&L streams read."""
        signed = qty if side in ("BUY", "BOT") else -qty
        commission = round(COMMISSION_PER_CONTRACT * abs(qty), 2)
        pos = self.positions.get(con_id)
        if pos is None:
            pos = PositionState(con_id, 0.0, 0.0, multiplier)
            self.positions[con_id] = pos
        if trade_date is not None:
            led = self.day.get(con_id)
            if led is None or led.trade_date != trade_date:
                led = self.day[con_id] = DayLedger(trade_date, pos.qty)
            led.cash_flow += signed * price * multiplier
            led.commissions += commission
        unit = price * multiplier
        realized = 0.0
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            total = pos.qty + signed
            pos.avg_cost = (pos.avg_cost * abs(pos.qty) + unit * abs(signed)) / abs(total)
            pos.qty = total
        else:
            closing = min(abs(signed), abs(pos.qty))
            direction = 1.0 if pos.qty > 0 else -1.0
            realized = closing * (unit - pos.avg_cost) * direction
            rest = abs(signed) - closing
            pos.qty += signed
            if abs(pos.qty) < 1e-9:
                pos.qty = 0.0
                pos.avg_cost = 0.0
            elif rest > 0:
                pos.avg_cost = unit  # flipped: the remainder opened at this price
        pos.realized_pnl += realized
        if trade_date is not None:
            self.day[con_id].realized += realized
        self.realized_pnl += realized
        self.commissions += commission
        self.cash += realized - commission
        return FillAccounting(commission, round(realized, 2), pos.qty)

    def open_positions(self) -> list[PositionState]:
        return [p for p in self.positions.values() if p.qty != 0]

    def snapshot(self, marks: Mapping[int, float]) -> AccountSnapshot:
        """Values at ``marks`` (con_id -> price per unit; missing marks value at average cost)."""
        unreal = 0.0
        gross = 0.0
        for p in self.open_positions():
            mark = marks.get(p.con_id)
            unit = p.avg_cost if mark is None else mark * p.multiplier
            unreal += p.qty * unit - p.qty * p.avg_cost
            gross += abs(p.qty) * unit
        nl = self.cash + unreal
        # IB counts futures in no GrossPositionValue: report 0 like a real paper account does, so a
        # client relying on it for futures exposure fails here first rather than against IB.
        im = INITIAL_MARGIN_RATE * gross
        mm = MAINT_MARGIN_RATE * gross
        return AccountSnapshot(
            self.account_id, self.currency, round(nl, 2), round(self.cash, 2), 0.0,
            round(unreal, 2), round(self.realized_pnl, 2), round(im, 2), round(mm, 2),
            round(nl - im, 2), round(nl - mm, 2), round(gross, 2),
        )  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "account_id": self.account_id,
            "currency": self.currency,
            "cash": self.cash,
            "realized_pnl": self.realized_pnl,
            "commissions": self.commissions,
            "positions": [
                {"con_id": p.con_id, "qty": p.qty, "avg_cost": p.avg_cost, "multiplier": p.multiplier,
                 "realized_pnl": p.realized_pnl}
                for p in self.positions.values()
            ],  # fmt: skip
            "day": [
                {"con_id": cid, "trade_date": d.trade_date.isoformat(), "start_qty": d.start_qty,
                 "cash_flow": d.cash_flow, "commissions": d.commissions, "realized": d.realized}
                for cid, d in self.day.items()
            ],  # fmt: skip
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Account":
        a = cls(str(d["account_id"]), float(d["cash"]), str(d.get("currency", "USD")))
        a.realized_pnl = float(d.get("realized_pnl", 0.0))
        a.commissions = float(d.get("commissions", 0.0))
        for p in d.get("positions", []):
            ps = PositionState(int(p["con_id"]), float(p["qty"]), float(p["avg_cost"]),
                               float(p["multiplier"]), float(p.get("realized_pnl", 0.0)))  # fmt: skip
            a.positions[ps.con_id] = ps
        for led in d.get("day", []):  # absent in state files written before the P&L streams
            a.day[int(led["con_id"])] = DayLedger(
                dt.date.fromisoformat(str(led["trade_date"])), float(led["start_qty"]), float(led["cash_flow"]),
                float(led["commissions"]), float(led["realized"]),
            )  # fmt: skip
        return a
