"""The engine's seams: what the daily cycle and the order path need of their collaborators.

Each is a small ``Protocol`` naming exactly the calls made across it, so a part can be read (and
tested) against its seam without the whole of the other side: the real ``BrokerGateway``,
``RiskGate``, ``OrderManager``, ``ChampionProvider``, ``AgentLoop`` and ``Store`` satisfy them
structurally, and nothing here imports their implementations.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd
    from ib_async import Trade

    from hydra_engine.agent.loop import AgentCycleResult
    from hydra_engine.broker.contracts import ContractMonth, ResolvedContract
    from hydra_engine.broker.records import AccountSnapshot, BarRecord, PositionSnapshot, QuoteSnapshot
    from hydra_engine.execution.order_records import WorkingOrder
    from hydra_engine.execution.targets import MoveResult
    from hydra_engine.markets import MarketConfig
    from hydra_engine.model.champion import Signal
    from hydra_engine.risk.intents import AccountState, Approval, Denial, OrderIntent, TradingState
    from hydra_engine.store.bars import BarRepo
    from hydra_engine.store.cycles import CycleRepo
    from hydra_engine.store.equity import EquityRepo
    from hydra_engine.store.kv import KeyValueStore
    from hydra_engine.store.ops_journal import OpsJournal
    from hydra_engine.store.orders import OrderRepo


@runtime_checkable
class Broker(Protocol):
    """The broker as the cycle and the execution desk use it (``BrokerGateway``)."""

    @property
    def is_connected(self) -> bool: ...

    async def ensure_connected(self, timeout_s: float = 10.0) -> bool: ...

    async def get_account_summary(self) -> AccountSnapshot: ...

    async def get_positions(self) -> list[PositionSnapshot]: ...

    async def resolve_contract(self, market: MarketConfig, as_of: dt.date | None = None) -> ResolvedContract: ...

    async def get_daily_bars(
        self, target: ContractMonth | MarketConfig, *, since: dt.date | None = None, lookback_days: int = 365,
    ) -> list[BarRecord]: ...

    async def get_quote(self, month: ContractMonth, timeout_s: float | None = None) -> QuoteSnapshot: ...

    def portfolio_mark(self, con_id: int) -> float | None: ...

    def known_month(self, con_id: int) -> ContractMonth | None: ...

    def cancel_order(self, trade: Trade) -> None: ...


class RiskCheck(Protocol):
    """The risk gate: the only maker of an ``Approval``."""

    def check(self, intent: OrderIntent, account: AccountState) -> Approval | Denial: ...

    def evaluate_account(self, account: AccountState) -> TradingState: ...


class OrderRouter(Protocol):
    """Moves a market's position to a target through the gate (``OrderManager``)."""

    @property
    def idle(self) -> bool: ...

    @property
    def working_orders(self) -> list[WorkingOrder]: ...

    async def move_to_target(self, market: MarketConfig, target: int, *, equity: EquityRepo | None = None,
                             trading_date: dt.date | None = None) -> MoveResult: ...

    async def wait_idle(self, timeout_s: float = 10.0, *, min_working: int = 0, symbol: str | None = None) -> None: ...


class ChampionSource(Protocol):
    """Each market's champion in the registry, asked at each signal (a promotion trades from the next cycle)."""

    async def predict_proba(self, market: str, features: pd.DataFrame) -> float | None: ...

    def last_signal(self, market: str) -> Signal | None: ...


class AgentStep(Protocol):
    """The self-healing agents' daily step for one market; its result is summarised into the cycle's
    record. ``size_fraction`` is the share of the market's size the agent allows (below 1 while its
    champion is de-risked)."""

    async def run_cycle(self, market: str, trading_date: dt.date, bars: pd.DataFrame) -> AgentCycleResult | None: ...

    def size_fraction(self, market: str) -> float: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...


class CycleStore(Protocol):
    """The repositories of the store that the cycle and the runner read and write."""

    @property
    def equity(self) -> EquityRepo: ...

    @property
    def bars(self) -> BarRepo: ...

    @property
    def cycles(self) -> CycleRepo: ...

    @property
    def kv(self) -> KeyValueStore: ...

    @property
    def ops(self) -> OpsJournal: ...

    @property
    def orders(self) -> OrderRepo: ...
