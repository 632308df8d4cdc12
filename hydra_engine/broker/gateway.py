"""BrokerGateway: the engine's only door to a broker, over ib_async's async API.

The same class talks to the embedded exchange, an IB paper account and a live account; only the
port differs. It owns one ib_async ``IB`` object, a reconnecting supervisor, the reconciliation
run on every (re)connect, and the execution stream (exactly once per execId). Orders go out only
with an unused risk-gate ``Approval``. Reads go to the parts it holds: ``account.AccountReader``,
``contract_book.ContractBook``, ``market_data.QuoteFetcher`` and ``market_data.BarFetcher``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import structlog
from ib_async import IB, CommissionReport, Contract, Fill, LimitOrder, Trade

from hydra_engine.broker.account import AccountReader
from hydra_engine.broker.approvals import (
    ConsumedApprovals,
    check_bound,
    consume_approval,
    require_approval,
)
from hydra_engine.broker.channel import RequestChannel
from hydra_engine.broker.connection import (
    BackoffPolicy,
    ConnectionSupervisor,
    probe_accounts,
)
from hydra_engine.broker.contract_book import ContractBook
from hydra_engine.broker.contracts import ContractMonth, MarketLike, ResolvedContract
from hydra_engine.broker.errors import (
    LIVE_PORTS,
    BrokerError,
    ClientIdInUse,
    LiveAccountRefused,
    NotConnected,
    PacingViolation,
    StateUnknown,
    classify,
)
from hydra_engine.broker.market_data import BarFetcher, QuoteFetcher
from hydra_engine.broker.records import (
    AccountSnapshot,
    BarRecord,
    BrokerNotice,
    ConnectionState,
    PositionSnapshot,
    QuoteSnapshot,
    SyncReport,
)
from hydra_engine.broker.sync import (
    CorrectionListener,
    ExecutionAssembler,
    ExecutionListener,
    PositionBook,
    RebindHook,
    SessionSync,
)

if TYPE_CHECKING:
    from hydra_engine.events import EngineEvent
    from hydra_engine.risk.intents import Approval

log = structlog.get_logger(__name__)

CONSUMED_APPROVALS_KEPT = 1000
"""Consumed approvals remembered by identity; an older one is still refused by its own ``used`` flag."""
FINISHED_TRADE_AGE_S = 86_400.0
FINISHED_TRADES_KEPT = 200
"""ib_async keeps every Trade and Fill of a session: finished ones older than a day, or beyond the
newest 200, are dropped by ``trim_finished_trades`` (the journal holds every execution)."""

OrderErrorListener = Callable[[int, str, int, str], None]
"""``(order_id, order_ref, code, message)``: reaches the order manager as the error arrives."""


class NowSource(Protocol):
    """The engine clock as the gateway reads it (any ``hydra_engine.clock`` clock fits)."""

    def now(self) -> dt.datetime: ...


class EventSink(Protocol):
    """Where connection changes are published (``hydra_engine.events.EventBus`` fits)."""

    def publish(self, event: EngineEvent) -> None: ...


class BrokerGateway:
    """Connection, account, contracts, data and order routing over one ib_async session.

    It holds its parts and delegates to them: an ``AccountReader`` (summary, positions, marks),
    a ``ContractBook`` (months, the month to hold), a ``QuoteFetcher`` and a ``BarFetcher``, each
    built with only what it needs (the session's ``RequestChannel``, the clock, a lock).
    """

    def __init__(
        self,
        *,
        port: int,
        client_id: int,
        host: str = "127.0.0.1",
        account: str | None = None,
        trading_mode: str = "paper",
        live_confirmed: bool = False,
        embedded: bool = False,
        market_data_type: int = 1,
        connect_timeout_s: float = 4.0,
        request_timeout_s: float = 10.0,
        backoff: BackoffPolicy | None = None,
        clock: NowSource | None = None,
        pacing_retries: int = 4,
        pacing_backoff_s: float = 2.0,
        events: EventSink | None = None,
    ) -> None:
        if not isinstance(client_id, int) or client_id <= 0:
            raise ValueError(f"client_id={client_id!r}: a fixed positive client id is required (0 is the master id)")
        if not 0 < port < 65536:
            raise ValueError(f"port={port} must be in 1..65535")
        if trading_mode not in ("paper", "live"):
            raise ValueError(f"trading_mode={trading_mode!r} must be 'paper' or 'live'")
        if market_data_type not in (1, 3):
            raise ValueError(f"market_data_type={market_data_type} must be 1 (live) or 3 (delayed)")
        if (port in LIVE_PORTS or trading_mode == "live") and not live_confirmed:
            raise LiveAccountRefused(
                f"port {port} / trading_mode {trading_mode!r} is live: refused without live_confirmed=True "
                "(needs trading_mode='live', HYDRA_LIVE_CONFIRMED=true and the operator's confirmation)"
            )
        if account and trading_mode == "paper" and not account.startswith("DU"):
            raise LiveAccountRefused(f"account {account!r} does not start with 'DU': refused in paper mode")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.trading_mode = trading_mode
        self.embedded = embedded
        self.market_data_type = market_data_type
        self._configured_account = account or ""
        self._connect_timeout = connect_timeout_s
        self._request_timeout = request_timeout_s
        self._clock = clock
        self._events = events
        self.ib = IB()
        self.ib.RaiseRequestErrors = True
        self.account: str = self._configured_account
        self.state: ConnectionState = "disconnected"
        self._resync_lock = asyncio.Lock()
        self.state_known = False
        """True once the last (re)connect's reconciliation completed; orders wait otherwise."""
        self.last_sync: SyncReport | None = None
        self.last_message_at: dt.datetime | None = None
        self.farms: dict[str, str] = {}
        self.notices: list[BrokerNotice] = []
        self._deliberate = False
        self._client_id_in_use = False
        self._changed = asyncio.Event()
        self._barrier_lock = asyncio.Lock()
        self._positions_lock = asyncio.Lock()
        """ib_async keeps ONE positions request: shared by the account reader and the reconciliation."""
        self._barrier_asked = 0
        self._barrier_done = 0
        self._supervisor = ConnectionSupervisor(self._attempt, backoff, name=f"ib:{port}", on_change=self._notify)
        self._assembler = ExecutionAssembler()
        self._order_error_listeners: list[OrderErrorListener] = []
        self._connection_listeners: list[Callable[[], None]] = []
        self._rebind_hooks: list[RebindHook] = []
        self._position_book: PositionBook | None = None
        self._consumed: ConsumedApprovals = {}
        channel = RequestChannel(self.ib, host=host, port=port, timeout_s=request_timeout_s)
        self._channel = channel
        self._account_reader = AccountReader(
            channel, account=lambda: self.account, now=self.now, positions_lock=self._positions_lock
        )
        self._contract_book = ContractBook(channel, now=self.now)
        self._quotes = QuoteFetcher(self.ib, barrier=self.barrier, now=self.now, market_data_type=market_data_type)
        self._bars = BarFetcher(
            self.ib, now=self.now, timeout_s=request_timeout_s, retries=pacing_retries, backoff_s=pacing_backoff_s,
            sleep=lambda s: self.sleep_backoff(s),
        )
        self.ib.disconnectedEvent += self._on_disconnected
        self.ib.errorEvent += self._on_error
        self.ib.execDetailsEvent += self._on_exec
        self.ib.commissionReportEvent += self._on_commission
        self.ib.updateEvent += self._on_update

    # ----------------------------------------------------------------- connection

    @property
    def is_connected(self) -> bool:
        return self.ib.isConnected() and self._supervisor.connected

    @property
    def supervisor(self) -> ConnectionSupervisor:
        return self._supervisor

    def now(self) -> dt.datetime:
        """The engine clock's time (wall clock when none was given), timezone-aware UTC."""
        if self._clock is not None:
            return self._clock.now()
        return dt.datetime.now(dt.UTC)

    async def connect(self, timeout_s: float | None = None) -> None:
        """Start the supervisor and wait for the first connect; raises when it does not come.

        The supervisor keeps retrying in the background after a timeout; ``disconnect()`` stops it.
        """
        self._deliberate = False
        self._supervisor.start()
        self._supervisor.kick()
        budget = timeout_s if timeout_s is not None else self._connect_timeout * 3 + self._request_timeout
        sup = self._supervisor
        try:
            await self.wait_until(
                lambda: sup.connected or sup.fatal_error is not None or not sup.running
                or (self._client_id_in_use and sup.failures > 0),
                budget,
            )
        except TimeoutError:
            pass
        if sup.connected:
            return
        fatal = self._supervisor.fatal_error
        if fatal is not None:
            raise fatal
        err = self._supervisor.last_error
        if self._client_id_in_use:
            raise ClientIdInUse(
                f"client id {self.client_id} is already in use on {self.host}:{self.port} (IB 326): "
                "stop the other session or configure another client id",
                code=326,
            )
        raise NotConnected(f"no API session with {self.host}:{self.port} after {budget:.1f}s: {err}")

    async def ensure_connected(self, timeout_s: float = 10.0) -> bool:
        """True when connected and reconciled; kicks a reconnect attempt otherwise. A session that is
        up but whose reconciliation failed (a report that did not come back, a resync after 1101 that
        was cut off) is reconciled again here, so the state never stays unknown while connected."""
        if self.is_connected and self.state_known:
            return True
        if self._supervisor.fatal_error is not None:
            return False
        if self.is_connected and self.ib.isConnected():
            async with self._resync_lock:
                if not self.state_known:
                    try:
                        await asyncio.wait_for(self.resync(), timeout_s)
                    except Exception as exc:  # noqa: BLE001 - still unknown: the caller waits and asks again
                        log.warning("broker.resync_failed", error=f"{type(exc).__name__}: {exc}")
            return self.is_connected and self.state_known
        self._deliberate = False
        self._supervisor.start()
        self._supervisor.kick()
        return await self._supervisor.wait_connected(timeout_s) and self.state_known

    async def disconnect(self) -> None:
        """Deliberate disconnect: the supervisor stops and does not reconnect."""
        self._deliberate = True
        self._assembler.flush()
        await self._supervisor.stop()
        self.ib.disconnect()
        self._quotes.reset()
        self.state = "stopped"
        self.state_known = False
        self._notify()
        self._connection_changed()
        log.info("broker.disconnected", port=self.port, deliberate=True)

    async def _attempt(self) -> None:
        """One connect + reconciliation; raises on any failure (the supervisor retries)."""
        self.state = "connecting"
        self.state_known = False
        self._client_id_in_use = False
        if self.ib.client.isConnected():
            self.ib.disconnect()
        self._quotes.reset()  # a new session starts without subscriptions
        if self.embedded:
            self.ib.client.MaxRequests = 0
            log.info("broker.throttle_lifted", reason="embedded exchange", port=self.port)
        try:
            await self.ib.connectAsync(
                self.host, self.port, clientId=self.client_id, timeout=self._connect_timeout,
                account=self._configured_account,
            )
        except Exception as exc:
            if self._client_id_in_use:
                raise ClientIdInUse(
                    f"client id {self.client_id} is already in use on {self.host}:{self.port} (IB 326)", code=326
                ) from exc
            raise
        accounts = self.ib.managedAccounts()
        account = self._configured_account or (accounts[0] if len(accounts) == 1 else "")
        if self._configured_account and self._configured_account not in accounts:
            self.ib.disconnect()
            raise LiveAccountRefused(f"configured account {self._configured_account!r} is not managed here: {accounts}")
        if not account:
            self.ib.disconnect()
            raise BrokerError(f"several accounts {accounts}: configure which one to trade")
        if self.trading_mode == "paper" and not account.startswith("DU"):
            self.ib.disconnect()
            raise LiveAccountRefused(f"account {account!r} does not start with 'DU': refused in paper mode")
        self.account = account
        self.ib.reqMarketDataType(self.market_data_type)
        await self._reconcile()
        self.state = "connected"
        self._notify()
        self._publish_state(f"account {account}, client id {self.client_id}")
        log.info(
            "broker.connected", port=self.port, client_id=self.client_id, account=account,
            reconnects=self._supervisor.connects, embedded=self.embedded,
        )

    async def _reconcile(self) -> SyncReport:
        sync = SessionSync(self.ib, self._assembler, account=self.account, timeout_s=self._request_timeout,
                           positions_lock=self._positions_lock)

        async def rebind_all(trades: Sequence[Trade]) -> None:
            for hook in list(self._rebind_hooks):
                await hook(trades)

        report = await sync.run(position_book=self._position_book, rebind=rebind_all)
        self.last_sync = report
        if not report.complete:
            raise StateUnknown("reconciliation incomplete: " + "; ".join(report.errors))
        self.state_known = True
        self._notify()
        return report

    async def resync(self) -> SyncReport:
        """Run the reconciliation again on the current session (after 1101, or on demand)."""
        if not self.ib.isConnected():
            raise NotConnected("resync needs a session")
        self.state_known = False
        return await self._reconcile()

    def _on_disconnected(self) -> None:
        self.state_known = False
        self._notify()
        if self._deliberate:
            return
        if self._supervisor.attempting:
            return
        self.state = "disconnected"
        self._quotes.reset()
        self._publish_state("connection lost: reconnecting")
        self._assembler.flush()
        log.warning("broker.disconnected", port=self.port, deliberate=False)
        self._supervisor.notify_lost()
        self._connection_changed()

    def _on_update(self) -> None:
        self.last_message_at = dt.datetime.now(dt.UTC)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    def _publish_state(self, detail: str = "") -> None:
        """ConnectionChanged on the engine's event bus (when one was given)."""
        if self._events is None:
            return
        from hydra_engine.events import ConnectionChanged

        self._events.publish(ConnectionChanged(
            at=self.now(), connected=self.state == "connected" and self.state_known,
            state=self.state.upper(), host=self.host, port=self.port, detail=detail,
        ))

    async def barrier(self, timeout_s: float | None = None) -> None:
        """A round trip to the gateway: every message it sent before answering has been applied.

        Concurrent callers share round trips (ib_async keeps one ``reqCurrentTime`` future, so
        two at once would lose one): a reply covers every caller that arrived before it was asked.
        """
        self._barrier_asked += 1
        mine = self._barrier_asked
        async with self._barrier_lock:
            if self._barrier_done >= mine:
                return
            covers = self._barrier_asked
            try:
                await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), timeout_s or self._request_timeout)
            except ConnectionError as exc:
                raise NotConnected(f"barrier: {exc}") from exc
            self._barrier_done = covers

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait (event-driven) until ``predicate()`` holds; re-checked on every gateway change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"gateway condition not met within {timeout_s}s (state {self.state})")
            self._changed.clear()
            if predicate():
                return
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def _on_error(self, req_id: int, code: int, message: str, contract: Contract | None = None) -> None:
        kind = classify(code)
        self._notify()
        notice = BrokerNotice(code=code, req_id=req_id, message=message, at=dt.datetime.now(dt.UTC), kind=kind)
        self.notices.append(notice)
        del self.notices[:-200]
        if kind == "connectivity":
            if code == 1100:
                self.state = "degraded"
                self.state_known = False
                self._publish_state(message)
                log.warning("broker.connectivity_lost", code=code, message=message)
            elif code == 1101:
                self.state = "connected"
                log.warning("broker.connectivity_restored_data_lost", code=code)
                asyncio.get_running_loop().create_task(self._resubscribe(), name="broker-resubscribe")
            else:
                self.state = "connected"
                self.state_known = self.last_sync is not None and self.last_sync.complete
                log.info("broker.connectivity_restored", code=code)
        elif kind == "farm":
            self.farms[message.split(":")[-1].strip() or str(code)] = "ok" if code in (2104, 2106, 2158) else "down"
            log.info("broker.farm_notice", code=code, message=message)
        elif kind == "client_id":
            self._client_id_in_use = True
            log.error(
                "broker.client_id_in_use", client_id=self.client_id, port=self.port,
                hint="another session uses this client id; stop it or configure another id",
            )
        elif kind == "pacing":
            log.warning("broker.pacing_violation", code=code, req_id=req_id, message=message)
        elif kind == "order" or req_id > 0 and self._order_ref(req_id):
            ref = self._order_ref(req_id)
            log.warning("broker.order_error", order_id=req_id, order_ref=ref, code=code, message=message)
            for listener in list(self._order_error_listeners):
                try:
                    listener(req_id, ref, code, message)
                except Exception:  # noqa: BLE001
                    log.exception("broker.order_error_listener_failed", code=code)
        else:
            log.info("broker.notice", code=code, req_id=req_id, message=message)

    async def _resubscribe(self) -> None:
        """After 1101 (data lost): account updates, then a full reconciliation."""
        try:
            self._quotes.resubscribe()
            if self.account:
                self.ib.client.reqAccountUpdates(True, self.account)
            await self.ib.reqAccountSummaryAsync()
            await self.resync()
        except Exception as exc:  # noqa: BLE001
            log.warning("broker.resubscribe_failed", error=str(exc))

    def _order_ref(self, order_id: int) -> str:
        trade = self.ib.wrapper.trades.get((self.client_id, order_id))
        return trade.order.orderRef if trade is not None else ""

    # ----------------------------------------------------------------- account (AccountReader)

    async def get_account_summary(self) -> AccountSnapshot:
        """Net liquidation, cash and position value as the gateway reports them. IB has no DailyPnL
        tag: the daily P&L is the engine's own, from its closing marks (``execution/account_view.py``)."""
        return await self._account_reader.summary()

    async def get_positions(self) -> list[PositionSnapshot]:
        """Futures positions (non-zero) in the traded account; safe for concurrent callers."""
        return await self._account_reader.positions()

    def portfolio_mark(self, con_id: int) -> float | None:
        """The broker's own mark of a held contract (price units); None when it has none."""
        return self._account_reader.portfolio_mark(con_id)

    # ----------------------------------------------------------------- contracts (ContractBook)

    async def contract_months(self, market: MarketLike) -> list[ContractMonth]:
        """Every listed month of ``market`` from the contract details."""
        return await self._contract_book.months(market)

    async def resolve_contract(self, market: MarketLike, as_of: dt.date | None = None) -> ResolvedContract:
        """The month to hold on ``as_of`` (front month, or the next one inside the roll window)."""
        return await self._contract_book.resolve(market, as_of)

    def known_month(self, con_id: int) -> ContractMonth | None:
        """A month listed earlier (a held month found again after it stopped being active)."""
        return self._contract_book.known(con_id)

    # ----------------------------------------------------------------- quotes and bars

    async def get_quote(self, month: ContractMonth, timeout_s: float | None = None) -> QuoteSnapshot:
        """Snapshot of bid/ask (mid and spread), flagged live or delayed."""
        self._channel.require_session()
        return await self._quotes.snapshot(month, timeout_s or self._request_timeout)

    async def get_daily_bars(
        self,
        target: ContractMonth | MarketLike,
        *,
        since: dt.date | None = None,
        lookback_days: int = 365,
    ) -> list[BarRecord]:
        """Completed daily bars after ``since`` (incremental); a market gives CONTFUT history.

        A bar is complete once its session closed by the contract's trading hours; CONTFUT has no
        contract details, so the front month's hours decide (a session that closed just before the
        decision time is today's bar, not tomorrow's)."""
        self._channel.require_session()
        hours = None if isinstance(target, ContractMonth) else await self._contract_book.front_hours(target)
        return await self._bars.daily(target, since=since, lookback_days=lookback_days, hours=hours)

    # ----------------------------------------------------------------- streams

    def subscribe_executions(self, listener: ExecutionListener) -> None:
        """Each execution with its commission, exactly once per execId (live or recovered)."""
        self._assembler.subscribe(listener)

    def subscribe_corrections(self, listener: CorrectionListener) -> None:
        """``(original, correction)``: IB re-sent a fill under a new execId (never a second fill)."""
        self._assembler.subscribe_corrections(listener)

    def subscribe_late_commissions(self, listener: Callable[[str, float], None]) -> None:
        """Commission reports that arrived after their execution was handed on."""
        self._assembler.subscribe_late_commissions(listener)

    def unsubscribe_executions(self, listener: ExecutionListener) -> None:
        self._assembler.unsubscribe(listener)

    def subscribe_connection(self, listener: Callable[[], None]) -> None:
        """Called when the session drops or is closed (working orders re-check their state)."""
        self._connection_listeners.append(listener)

    def _connection_changed(self) -> None:
        for listener in list(self._connection_listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001
                log.exception("broker.connection_listener_failed")

    def subscribe_order_errors(self, listener: OrderErrorListener) -> None:
        """Order errors (201 reject, 202 cancelled, 10148 cancel raced a fill...) as they arrive."""
        self._order_error_listeners.append(listener)

    def add_rebind_hook(self, hook: RebindHook) -> None:
        """Called with every open order (fresh ``Trade`` objects) on each connect and reconnect."""
        self._rebind_hooks.append(hook)

    def set_position_book(self, book: PositionBook | None) -> None:
        """The journal's positions, compared with the broker's on each connect."""
        self._position_book = book

    def _on_exec(self, trade: Trade, fill: Fill) -> None:
        self._assembler.offer(fill, live=True)

    def _on_commission(self, trade: Trade, fill: Fill, report: CommissionReport) -> None:
        self._assembler.commission(fill)

    # ----------------------------------------------------------------- orders

    def place_order(
        self,
        approval: Approval,
        month: ContractMonth,
        *,
        action: str,
        quantity: float,
        limit_price: float,
        order_ref: str,
        replace: Trade | None = None,
    ) -> Trade:
        """Send (or, with ``replace``, modify) a DAY limit order; returns the ib_async ``Trade``.

        ``approval`` must be an unused ``Approval`` from ``RiskGate.check``; it is consumed here.
        """
        if not self.ib.isConnected():
            raise NotConnected(f"order {order_ref}: not connected to {self.host}:{self.port}")
        if not self.state_known:
            raise StateUnknown(f"order {order_ref}: broker state not reconciled yet; trading waits")
        if action not in ("BUY", "SELL"):
            raise ValueError(f"order {order_ref}: action={action!r} must be BUY or SELL")
        if quantity <= 0:
            raise ValueError(f"order {order_ref}: quantity={quantity} must be > 0")
        intent = require_approval(approval, self._consumed)
        check_bound(intent, order_ref=order_ref, action=action, con_id=month.con_id, quantity=quantity,
                    limit_price=limit_price, modify=replace is not None)
        consume_approval(approval, self._consumed)
        while len(self._consumed) > CONSUMED_APPROVALS_KEPT:  # oldest first: weeks of orders stay bounded
            del self._consumed[next(iter(self._consumed))]
        if replace is not None:
            if replace.isDone():
                raise BrokerError(f"order {order_ref}: cannot modify, it is {replace.orderStatus.status}")
            order = replace.order
            order.lmtPrice = limit_price
            order.totalQuantity = quantity
            trade = self.ib.placeOrder(replace.contract, order)
            log.info("broker.order_modified", order_ref=order_ref, order_id=order.orderId, limit=limit_price, qty=quantity)
            return trade
        order = LimitOrder(action, quantity, limit_price, orderRef=order_ref, tif="DAY", account=self.account)
        trade = self.ib.placeOrder(month.qualified(), order)
        log.info(
            "broker.order_sent", order_ref=order_ref, order_id=order.orderId, symbol=month.local_symbol,
            action=action, qty=quantity, limit=limit_price,
        )
        return trade

    def cancel_order(self, trade: Trade) -> None:
        """Ask the broker to cancel; the outcome arrives as events (202, or 10148 if it filled)."""
        if not self.ib.isConnected():
            raise NotConnected(f"cancel {trade.order.orderRef}: not connected")
        if trade.isDone():
            return
        self.ib.cancelOrder(trade.order)
        log.info("broker.cancel_sent", order_ref=trade.order.orderRef, order_id=trade.order.orderId)

    def open_trades(self) -> list[Trade]:
        return list(self.ib.openTrades())

    def trim_finished_trades(self, *, max_age_s: float = FINISHED_TRADE_AGE_S,
                             keep: int = FINISHED_TRADES_KEPT) -> int:
        """Forget ib_async's finished trades (and their fills) last updated more than ``max_age_s``
        wall seconds ago or beyond the newest ``keep``; returns how many were dropped.

        ib_async clears these only when a session ends, so an engine connected for weeks would keep
        every order it ever sent. Working orders are never touched; every execution is already in the
        fill journal (exactly once by execId), and a reconnect asks the gateway again anyway."""
        w = self.ib.wrapper
        now = dt.datetime.now(dt.UTC)
        oldest = dt.datetime.min.replace(tzinfo=dt.UTC)

        def last_update(t: Trade) -> dt.datetime:
            at = t.log[-1].time if t.log else oldest
            return at if at.tzinfo else at.replace(tzinfo=dt.UTC)

        done = sorted(((k, t) for k, t in w.trades.items() if t.isDone()), key=lambda kt: last_update(kt[1]),
                      reverse=True)
        dropped = 0
        for i, (key, trade) in enumerate(done):
            if i < keep and (now - last_update(trade)).total_seconds() <= max_age_s:
                continue
            del w.trades[key]
            if w.permId2Trade.get(trade.order.permId) is trade:
                del w.permId2Trade[trade.order.permId]
            for fill in trade.fills:
                if w.fills.get(fill.execution.execId) is fill:
                    del w.fills[fill.execution.execId]
            dropped += 1
        live = {id(f) for t in w.trades.values() for f in t.fills}
        for exec_id, fill in list(w.fills.items()):  # executions no kept trade owns (other clients, recovered)
            at = fill.time if isinstance(fill.time, dt.datetime) else oldest
            at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
            if id(fill) not in live and (now - at).total_seconds() > max_age_s:
                del w.fills[exec_id]
        if dropped:
            log.info("broker.trades_trimmed", dropped=dropped, kept=len(w.trades), fills=len(w.fills))
        return dropped

    async def sleep_backoff(self, seconds: float) -> None:
        """Pacing back-off in real seconds: IB's pacing windows run on its wall clock, and a
        lock-step clock would never move while the engine waits on it."""
        await asyncio.sleep(seconds)


__all__ = ["BrokerGateway", "LIVE_PORTS", "PacingViolation", "classify", "probe_accounts"]
