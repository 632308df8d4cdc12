"""The embedded paper exchange: an IB-compatible TWS wire server on loopback.

It stands alone: nothing here imports the rest of ``hydra_engine``. The wire side (server, order
book, account, persistence, faults) meets the market side (universe, clock) only through
``market_types``.
"""

from .account import Account, AccountSnapshot, PositionState
from .exchange_server import EmbeddedExchange
from .faults import FaultPlan, FaultSpecError
from .orders import Execution, WorkingOrder
from .state_file import StateFileError

__all__ = [
    "Account",
    "AccountSnapshot",
    "EmbeddedExchange",
    "Execution",
    "FaultPlan",
    "FaultSpecError",
    "PositionState",
    "StateFileError",
    "WorkingOrder",
]
