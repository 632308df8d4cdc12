"""Reference data beyond contract details: market rules, symbol search, depth exchanges, and the
answers to the requests a futures-only paper exchange has nothing for (``POLICIES``).

Market rule ids are derived from the tick size (``round(tick * 1e6)``: 0.01 is rule 10000), so the
ids contract details name are stable whatever products a universe holds, and ``reqMarketRule``
answers every id a listed product uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from .market_types import ContractSpec
from .messages import SymbolSample

MAX_SYMBOL_SAMPLES = 16
"""IB returns at most this many matches to reqMatchingSymbols."""

SCANNER_PARAMETERS_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<ScanParameterResponse><InstrumentList/><LocationTree/><ScanTypeList/></ScanParameterResponse>"
)
"""An empty parameter document: the exchange runs no scanners."""


def market_rule_id(tick: float) -> int:
    return int(round(tick * 1_000_000))


def market_rules(specs: Sequence[ContractSpec]) -> dict[int, list[tuple[float, float]]]:
    """Rule id -> (lowEdge, increment) rows: one flat tick per product, as CME futures have."""
    return {market_rule_id(s.min_tick): [(0.0, s.min_tick)] for s in specs}


def matching_symbols(specs: Sequence[ContractSpec], pattern: str, continuous_con_id: dict[str, int]) -> list[SymbolSample]:
    """Products whose symbol starts with ``pattern``, then those whose name contains it."""
    p = pattern.strip().upper()
    if not p:
        return []
    first = [s for s in specs if s.symbol.upper().startswith(p)]
    more = [s for s in specs if s not in first and p in s.long_name.upper()]
    return [SymbolSample(continuous_con_id.get(s.symbol, 0), s.symbol, "CONTFUT", s.exchange, s.currency, ("FUT",),
                         s.long_name) for s in (first + more)[:MAX_SYMBOL_SAMPLES]]  # fmt: skip


def depth_exchanges(specs: Sequence[ContractSpec]) -> list[tuple[str, str, str, str, int]]:
    exchanges = sorted({s.exchange for s in specs})
    return [(e, "FUT", e, "Deep", 1) for e in exchanges]


@dataclass(frozen=True, slots=True)
class Policy:
    """How the exchange answers a request it holds no data for."""

    kind: Literal["reply", "error", "silent"]
    """``reply``: IB's answer with nothing in it; ``error``: IB's error on the request's id;
    ``silent``: IB sends nothing until an event happens, and neither does the exchange."""
    code: int = 0
    text: str = ""


_NO_OPTIONS = "No security definition has been found for the request (the exchange lists no options)"
POLICIES: dict[int, Policy] = {
    12: Policy("silent", text="news bulletins arrive only when one is published: none are"),
    13: Policy("silent"),
    18: Policy("error", 344, "The account logged into is not a financial advisor account."),
    19: Policy("error", 344, "The account logged into is not a financial advisor account."),
    21: Policy("error", 200, _NO_OPTIONS),
    22: Policy("error", 162, "Historical Market Data Service error message:the embedded exchange runs no market scanners"),
    24: Policy("reply", text="an empty scanner parameter document"),
    52: Policy("error", 430, "We are sorry, but fundamentals data for the security specified is not available."),
    54: Policy("error", 200, _NO_OPTIONS),
    55: Policy("error", 200, _NO_OPTIONS),
    65: Policy("reply", text="verifyCompleted(false): API verification is not used"),
    66: Policy("reply", text="verifyCompleted(false): API verification is not used"),
    67: Policy("reply", text="an empty display group list"),
    68: Policy("silent", text="display group updates arrive only when a group changes: there are none"),
    69: Policy("silent"),
    72: Policy("reply", text="verifyAndAuthCompleted(false): API verification is not used"),
    73: Policy("reply", text="verifyAndAuthCompleted(false): API verification is not used"),
    79: Policy("reply", text="no soft dollar tiers"),
    80: Policy("reply", text="one family code row per account"),
    82: Policy("reply", text="the product exchanges, deep book"),
    83: Policy("reply", text="no SMART components (futures route to their exchange)"),
    84: Policy("error", 10276, "News feed is not allowed"),
    85: Policy("reply", text="no news providers"),
    86: Policy("reply", text="no headlines (historicalNewsEnd)"),
    100: Policy("error", 10276, "News feed is not allowed"),
    102: Policy("error", 10276, "News feed is not allowed"),
    104: Policy("reply", text="userInfo with an empty white-branding id"),
}
"""Answers of the ``OtherRequest`` message ids (the ids are the clients' outgoing message ids)."""
