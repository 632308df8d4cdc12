"""Errors raised by the broker layer.

Each carries enough context for an operator to act on it without reading a traceback: which
request, which contract or key, and what the accepted values are.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base class for every broker-layer failure."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        """IB error code when the failure came from the gateway (e.g. 200, 162, 326)."""


class NotConnected(BrokerError):
    """A request needs a live API session and there is none (trading waits, nothing is sent)."""


class ContractNotFound(BrokerError):
    """The gateway has no security definition for the requested market (IB error 200)."""


class PacingViolation(BrokerError):
    """IB refused a historical-data request for pacing (error 162); retried after a back-off."""


class ClientIdInUse(BrokerError):
    """IB error 326: another session already uses this client id."""


class LiveAccountRefused(BrokerError):
    """A live port or a non-paper account was offered without the live confirmation."""


class ApprovalRejected(BrokerError):
    """``place_order`` was handed something other than an unused risk-gate ``Approval``."""


class OrderRejected(BrokerError):
    """The broker rejected an order (IB error 201 or an Inactive status)."""


class StateUnknown(BrokerError):
    """Broker reports (open orders, executions, positions) are missing: trading must wait."""


LIVE_PORTS = frozenset({4001, 7496})
CONNECTIVITY_CODES = frozenset({1100, 1101, 1102})
FARM_CODES = frozenset({2103, 2104, 2105, 2106, 2107, 2108, 2119, 2157, 2158})
ORDER_ERROR_CODES = frozenset({103, 104, 105, 110, 135, 161, 201, 202, 10147, 10148, 10149})

def classify(code: int) -> str:
    """Which kind of notice an IB code is, for logging and routing."""
    if code in CONNECTIVITY_CODES:
        return "connectivity"
    if code in FARM_CODES:
        return "farm"
    if code in (162, 100, 420):
        return "pacing"
    if code == 326:
        return "client_id"
    if code in ORDER_ERROR_CODES:
        return "order"
    return "other"
