"""Typed, sequential reading of one client message's fields, and the contract block.

Every read names the field, so a garbage value yields a clear log line and an IB-style error (320)
instead of a crash. Shared by the request decoders in ``requests`` and ``order_requests``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
