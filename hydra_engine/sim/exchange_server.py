"""``EmbeddedExchange``: the asyncio server, and the one place that orders every state change.

One exchange per process owns the clock, the universe, the accounts and the order book, and is
composed of parts it holds: the client registry, the account book, the contract blocks, the
order-event delivery and the marker. Client sessions (``client_session.py``) decode requests and
answer read-only ones themselves; they see the exchange only as an ``ExchangeCore``
(``exchange_core.py``). Everything that changes state (orders, cancels, time, faults, restarts)
goes through this class, so the ordering of messages to every client is decided in one place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from . import messages as M
from .account import Account, PositionState
from .account_book import AccountBook
from .client_registry import ClientRegistry
from .client_session import ClientSession
from .clock import SimClock
from .datafeed import DataFeed
from .faults import NOTICES, Fault, FaultPlan
from .market_types import MarketUniverse
from .marking import AccountMarker
from .order_delivery import OrderDelivery
from .orders import ACTIVE, DONE, BookEvent, Execution, OrderBook, WorkingOrder
from .requests import CancelOrder, PlaceOrder, ReqGlobalCancel, ReqOpenOrders
from .audit_log import AuditLog, audit_path
from .state_file import exchange_state, load_state, restore_exchange, save_state
from .wire_views import ContractWire

log = structlog.get_logger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
EXEC_DAY_TZ = ZoneInfo("America/New_York")
"""Executions are replayed for the current calendar day in New York, as IB resets them."""
SETTLE_LOOP_TURNS = 6
"""Event-loop turns ``advance_to`` yields first, so an order a client on the same loop has just
written is booked before time moves (the embedded, lock-step case)."""
REALTIME_STEP_S = 0.2
"""In real-time and fixed-speed modes the exchange plays the clock forward this often (real s)."""
PRUNE_AFTER = dt.timedelta(days=7)
"""Executions and finished orders older than this (simulated time) are never replayed: dropped."""
STATE_SAVE_INTERVAL_S = 5.0
"""In the background modes the clock alone is persisted at most this often (real seconds)."""


class EmbeddedExchange:
    """IB-compatible paper exchange on loopback. Build it with ``await EmbeddedExchange.start()``."""

    def __init__(self) -> None:  # use start()
        self.host = "127.0.0.1"
        self.port = 0
        self.clock: SimClock
        self.universe: MarketUniverse
        self.accounts: list[str] = []
        self.max_server_version = 178
        self.pacing = True
        self.state_path: Path | None = None
        self.seed = 7
        self.busy_seconds = 0.0
        """Perf-counter seconds spent playing time (advance) and handling requests."""
        self.busy_cpu_seconds = 0.0
        """CPU seconds (this thread) spent there: the same, without time lost to other processes."""
        self.registry = ClientRegistry()
        """Open connections and started clients (``client_registry.py``)."""
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._conn_tasks: set[asyncio.Task] = set()
        self._down = False
        self._stopped = False
        self._last_t: dt.datetime
        self._advance_lock = asyncio.Lock()
        self._ticker: asyncio.Task | None = None
        self._save_pending = False
        self._save_lock = asyncio.Lock()
        self.trade_log_days = 1
        """New York calendar days of executions replayed to a reconnecting client (``start``)."""
        self.audit: AuditLog | None = None
        """The append-only record of every order and execution (beside the state file)."""
        self._publish_lock = asyncio.Lock()
        self._publish_spawned = False
        self.faults = FaultPlan(None)
        self.feed: DataFeed
        self.book: OrderBook
        self.account_book: AccountBook
        """The managed accounts and their values at the current marks (``account_book.py``)."""
        self.contracts: ContractWire
        self.delivery: OrderDelivery
        """Order events to their owning clients (``order_delivery.py``)."""
        self.marker: AccountMarker
        """Re-marks positions between fills for account subscribers (``marking.py``)."""

    # ----- construction ---------------------------------------------------------------------
    @classmethod
    async def start(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 7,
        clock: SimClock | None = None,
        universe: MarketUniverse | None = None,
        faults: str | None = None,
        state_path: Path | None = None,
        accounts: Sequence[str] = ("DU1234567",),
        starting_cash: float = 1_000_000.0,
        max_server_version: int = 178,
        pacing: bool = True,
        trade_log_days: int = 1,
    ) -> EmbeddedExchange:
        """``trade_log_days``: how many New York calendar days of executions a reconnecting client is
        replayed (1: today only, as IB Gateway does by default; its trade-log setting allows up to 7)."""
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the embedded exchange binds to loopback only (host {host!r}; accepted: "
                             f"{', '.join(LOOPBACK_HOSTS)})")  # fmt: skip
        if not 157 <= max_server_version <= 178:
            raise ValueError(f"max_server_version {max_server_version} outside 157..178")
        if not accounts or any(not a for a in accounts):
            raise ValueError("accounts must be a non-empty list of account ids")
        if not 0 < starting_cash < 1e12:
            raise ValueError(f"starting_cash {starting_cash} outside (0, 1e12)")
        if not 1 <= trade_log_days <= 7:
            raise ValueError(f"trade_log_days {trade_log_days} outside 1..7")
        ex = cls()
        ex.trade_log_days = int(trade_log_days)
        await ex._boot(host=host, port=port, seed=seed, clock=clock, universe=universe, faults=faults,
                       state_path=state_path, accounts=accounts, starting_cash=starting_cash,
                       max_server_version=max_server_version, pacing=pacing)  # fmt: skip
        return ex

    async def _boot(self, *, host: str, port: int, seed: int, clock: SimClock | None, universe: MarketUniverse | None,
                    faults: str | None, state_path: Path | None, accounts: Sequence[str], starting_cash: float,
                    max_server_version: int, pacing: bool) -> None:  # fmt: skip
        """Build the parts, resume a saved state, listen: the body of ``start``."""
        self.host, self.seed, self.max_server_version, self.pacing = host, seed, max_server_version, pacing
        self.state_path = Path(state_path) if state_path else None
        self.faults = FaultPlan(faults, seed)
        if universe is None:
            from .universe import build_universe

            universe = await asyncio.to_thread(build_universe, seed)
        self.universe = universe
        self.feed = DataFeed(universe)
        saved = await asyncio.to_thread(load_state, self.state_path) if self.state_path else None
        self.audit = await asyncio.to_thread(AuditLog, audit_path(self.state_path)) if self.state_path else None
        if clock is None:
            start = getattr(universe, "default_clock_start", lambda: dt.datetime(2018, 1, 2, 12, tzinfo=dt.UTC))()
            if saved:
                start = max(start, dt.datetime.fromisoformat(saved["clock"]))
            clock = SimClock.lockstep(start)
        self.clock = clock
        if saved and self.lockstep and dt.datetime.fromisoformat(saved["clock"]) > clock.now():
            clock.set(dt.datetime.fromisoformat(saved["clock"]))
        bind_clock = getattr(universe, "bind_clock", None)
        if bind_clock is not None:
            bind_clock(clock)
        self.accounts = list(accounts)
        self.account_book = AccountBook({a: Account(a, starting_cash) for a in self.accounts}, self.feed, clock.now)
        # A fresh exchange draws a run id so execIds and permIds never repeat across runs (an engine
        # store may outlive an exchange without a state file); a resumed one keeps its own.
        run_id = secrets.randbits(32)
        self.book = OrderBook(self.feed, self.account_book.accounts, exec_prefix=f"{run_id:08x}")
        self.book.next_perm_id = 100_000_000 + (run_id % 1_000) * 1_000_000
        self.contracts = ContractWire(universe)
        self.delivery = OrderDelivery(self.registry, self.contracts, self.account_book, self.faults,
                                      book_correction=self._book_correction)
        self.delivery.hold = self.state_path is not None  # persist before publish
        self._last_t = clock.now()
        self.marker = AccountMarker(self.account_book, self.registry, universe, self.feed, self._last_t,
                                    publish=self.delivery.behind)  # fmt: skip
        if saved:
            self._last_t = restore_exchange(self, saved)
        await self._listen(port)
        if self.lockstep is False:
            self._ticker = asyncio.create_task(self._tick_loop(), name="sim-exchange-ticker")
        log.info("sim_exchange_started", host=host, port=self.port, seed=seed, clock=getattr(clock, "mode", "?"),
                 now=self._last_t.isoformat(), accounts=self.accounts, faults=self.faults.spec or None,
                 resumed=bool(saved), max_server_version=max_server_version)  # fmt: skip

    @property
    def lockstep(self) -> bool:
        return getattr(self.clock, "mode", "lockstep") == "lockstep"

    @property
    def last_played(self) -> dt.datetime:
        """Simulated time up to which sessions, fills and expiries have been played."""
        return self._last_t

    @property
    def serving(self) -> bool:
        """Listening and accepting connections (False while a gateway restart is down, or stopped)."""
        return not self._down and not self._stopped and self._server is not None and self._server.is_serving()

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down or self._stopped:
            writer.close()
            return
        s = ClientSession(self, reader, writer)
        self.registry.add(s)
        for f in self.faults.on_connect():
            if f.kind == "slow_connect":
                s.end_delay = f.param("s")
                log.info("sim_fault_slow_connect", conn=s.conn_id, seconds=s.end_delay)
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        try:
            await s.run()
        except asyncio.CancelledError:  # stop(): the session is closed already
            pass
        finally:
            if task is not None:
                self._conn_tasks.discard(task)

    # ----- the core, as sessions see it (``ExchangeCore``) -------------------------------------
    def client(self, client_id: int) -> ClientSession | None:
        return self.registry.get(client_id)

    def register(self, s: ClientSession) -> None:
        self.registry.register(s)

    def unregister(self, s: ClientSession) -> None:
        self.registry.unregister(s)

    def spawn(self, coro: Coroutine[object, object, None], name: str) -> None:
        t = asyncio.create_task(coro, name=name)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def wire(self, con_id: int) -> M.WireContract | None:
        return self.contracts.get(con_id)

    def next_valid_id(self, client_id: int) -> int:
        return self.book.next_valid_id(client_id)

    @property
    def clients(self) -> list[int]:
        """Client ids of the connected, started sessions."""
        return self.registry.client_ids()

    # ----- public queries -------------------------------------------------------------------
    def executions_today(self) -> list[Execution]:
        """The executions a reconnecting client is replayed (and the state file keeps): those of the
        current New York calendar day, or of the last ``trade_log_days`` of them."""
        first = self.clock.now().astimezone(EXEC_DAY_TZ).date() - dt.timedelta(days=self.trade_log_days - 1)
        return [e for e in self.book.executions if e.time.astimezone(EXEC_DAY_TZ).date() >= first]

    def positions(self, account: str | None = None) -> dict[int, PositionState]:
        """Open positions of ``account`` (default: the first) by conId."""
        return self.account_book.open_positions(account or self.accounts[0])

    def account_values(self, account: str | None = None) -> dict[str, float]:
        """IB account tags (NetLiquidation, TotalCashValue, ...) at the current marks."""
        return self.account_book.snapshot(account or self.accounts[0])[0].as_tags()

    def open_orders(self) -> list[WorkingOrder]:
        return self.book.working()

    def completed_orders_today(self) -> list[WorkingOrder]:
        """Orders filled, cancelled or rejected today (New York day): what reqCompletedOrders lists."""
        today = self.clock.now().astimezone(EXEC_DAY_TZ).date()
        return [o for o in self.book.orders.values()
                if o.status in DONE and o.done_at is not None and o.done_at.astimezone(EXEC_DAY_TZ).date() == today]

    # ----- request dispatch -----------------------------------------------------------------
    def submit(self, s: ClientSession, req: object) -> None:
        """A session decoded ``req``: run the request faults, then change state here or hand a
        read-only request back to the session."""
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            for f in self.faults.on_request():
                if f.kind == "drop":
                    log.info("sim_fault_drop", conn=s.conn_id, client_id=s.client_id, why="rate")
                    s.close("injected fault: drop")
                    return
            if isinstance(req, PlaceOrder):
                self._place(s, req)
            elif isinstance(req, CancelOrder):
                self._cancel(s, req)
            elif isinstance(req, ReqOpenOrders):
                working, every = self.book.working(), req.all_clients
                self.delivery.behind(lambda: self.delivery.send_open_orders(s, working, every))
            elif isinstance(req, ReqGlobalCancel):
                for o in self.book.working():
                    self._deliver(self.book.cancel(o.client_id, o.order_id, self.clock.now()).events)
            else:  # a read of state not yet on disk waits behind its save
                self.delivery.behind(lambda: s.answer(req))
        finally:
            self.busy_seconds += time.perf_counter() - t0
            self.busy_cpu_seconds += time.thread_time() - c0

    def _place(self, s: ClientSession, req: PlaceOrder) -> None:
        assert s.client_id is not None
        faults = self.faults.on_order()
        kinds = {f.kind for f in faults}
        now = self.clock.now()
        resolved = self.feed.resolve(req.contract, now, True)
        out = self.book.place(s.client_id, req, resolved, now, self.accounts[0],
                              force_reject="Injected fault: order rejected by the exchange" if "reject" in kinds else None)  # fmt: skip
        if out.error:
            code, text = out.error
            log.info("sim_order_refused", client_id=s.client_id, order_id=req.order_id, code=code, text=text)
            s.error(req.order_id, code, text)
        o = self.book.orders.get((s.client_id, req.order_id))
        if o is not None and not out.error and o.rest_rule is None and not self.book.links.held(o):
            o.rest_rule = self.faults.on_order_placed(working=o.status in ACTIVE)
            if o.rest_rule is not None:
                log.info("sim_fault_order_rests", client_id=s.client_id, order_id=o.order_id)
        delay = max((f.param("s") for f in faults if f.kind == "delay_ack"), default=0.0)
        self._deliver(out.events, delay=delay)
        self._after_faults(faults, s)
        self._save_soon()

    def _cancel(self, s: ClientSession, req: CancelOrder) -> None:
        assert s.client_id is not None
        o = self.book.orders.get((s.client_id, req.order_id))
        faults = self.faults.on_cancel(working=o is not None and o.status in ACTIVE)
        if o is not None and o.rest_rule is not None and o.status in ACTIVE:
            self.faults.on_rest_raced(o.rest_rule)
            o.rest_rule = None
            faults = [*faults, Fault("cancel_race")]
        if any(f.kind == "cancel_race" for f in faults) and o is not None:
            now = self.clock.now()
            price = self.feed.mark(o.con_id, now) or o.lmt_price or o.avg_fill_price
            log.info("sim_fault_cancel_race", client_id=s.client_id, order_id=o.order_id, price=price)
            self._deliver(self.book.fill_now(o, now, price))
        out = self.book.cancel(s.client_id, req.order_id, self.clock.now())
        if out.error:
            s.error(req.order_id, *out.error)
        self._deliver(out.events)
        self._after_faults(faults, s)
        self._save_soon()

    # ----- order events and faults ------------------------------------------------------------
    def _deliver(self, events: list[BookEvent], delay: float = 0.0) -> None:
        for ev in events:
            if ev.order.rest_rule is not None and ev.order.status not in ACTIVE:  # expired while resting
                self.faults.on_rest_ended(ev.order.rest_rule)
                ev.order.rest_rule = None
                log.info("sim_fault_rest_ended", client_id=ev.order.client_id, order_id=ev.order.order_id,
                         status=ev.order.status)  # fmt: skip
        self._after_faults(self.delivery.deliver(events, delay), None)
        if self.delivery.held and not self._publish_spawned:
            self._publish_spawned = True
            self.spawn(self._publish_held(), "sim-persist-then-publish")

    async def _publish_held(self) -> None:
        """Save the state, then send what was held for it (persist before publish)."""
        self._publish_spawned = False
        async with self._publish_lock:
            while self.delivery.held:
                n = self.delivery.held
                try:
                    await self.save_state()
                except Exception:  # noqa: BLE001 - a simulator still answers; the log says why
                    log.exception("sim_state_save_failed", path=str(self.state_path))
                self.delivery.release(n)

    def _after_faults(self, faults: list[Fault], s: ClientSession | None) -> None:
        for f in faults:
            if f.kind == "drop" and s is not None:
                log.info("sim_fault_drop", conn=s.conn_id, client_id=s.client_id)
                s.close("injected fault: drop")
            elif f.kind == "restart":
                log.info("sim_fault_restart", down_seconds=f.param("down"))
                self.spawn(self.restart(f.param("down")), "sim-fault-restart")
            elif f.kind == "notice":
                self.notice(int(f.param("code")))

    def _book_correction(self, correction: Execution) -> None:
        """A corrected execution joins the day's executions (replayed to reconnecting clients,
        saved, and in the record) before its messages go out; positions do not change."""
        self.book.executions.append(correction)
        self._save_soon()

    def notice(self, code: int, text: str | None = None) -> None:
        """Broadcast a system notice (1100/1101/1102, 2103-2106...) to every client."""
        text = text or NOTICES.get(code, "Notice")
        log.info("sim_notice", code=code)
        for s in self.registry.started():
            if code == 1101:  # data lost: the client must resubscribe, as with IB
                s.mkt.clear()
                s.data.streams.clear()
            s.error(-1, code, text)

    # ----- time -----------------------------------------------------------------------------
    async def advance_to(self, t: dt.datetime) -> None:
        """Lock-step: set the clock to ``t``, play sessions, fills and expiries up to ``t`` and
        flush every message to the clients. In other modes: play up to ``min(t, clock.now())``."""
        if t.tzinfo is None:
            raise ValueError(f"advance_to needs a timezone-aware time, got {t.isoformat()}")
        for _ in range(SETTLE_LOOP_TURNS):  # let requests already on the loopback socket land first
            await asyncio.sleep(0)
        async with self._advance_lock:
            if self.lockstep:
                if t > self.clock.now():
                    self.clock.set(t)
                target = self.clock.now()
            else:
                target = min(t, self.clock.now())
            self._play(target)
        await self._publish_held()
        await self._flush_all()
        self._save_soon()

    def _play(self, t: dt.datetime) -> int:
        """Play (last played, t]; returns how many order events it produced."""
        t0, c0 = time.perf_counter(), time.thread_time()
        n = 0
        try:
            start = self._last_t
            if t > start:
                events = self.book.advance(start, t)
                n = len(events)
                self._deliver(events)
                self._last_t = t
                due = self.faults.due(start, t)
                if due:
                    for f in due:
                        if f.kind == "drop":
                            for s in self.registry.started():
                                s.close("injected fault: drop")
                    self._after_faults([f for f in due if f.kind != "drop"], None)
                self.book.prune(t - PRUNE_AFTER)
                self.marker.on_time(t)
            for s in self.registry.started():
                s.refresh_market_data(t)
        finally:
            self.busy_seconds += time.perf_counter() - t0
            self.busy_cpu_seconds += time.thread_time() - c0
        return n

    async def _flush_all(self) -> None:
        sessions = self.registry.open_connections()
        if sessions:
            await asyncio.gather(*(s.flush() for s in sessions))

    async def _tick_loop(self) -> None:
        last_save = time.monotonic()
        while not self._stopped:
            try:
                async with self._advance_lock:
                    n = self._play(self.clock.now())
                await self._publish_held()
                await self._flush_all()
                if n or time.monotonic() - last_save > STATE_SAVE_INTERVAL_S:
                    self._save_soon()  # orders changed, or the clock moved on: persist
                    last_save = time.monotonic()
            except Exception:  # keep ticking: a bug in one step must not freeze the market
                log.exception("sim_tick_failed")
            await asyncio.sleep(REALTIME_STEP_S)

    # ----- restart / stop -------------------------------------------------------------------
    async def restart(self, down_seconds: float) -> None:
        """Gateway restart: close every socket, refuse connections for ``down_seconds`` real
        seconds, then listen again on the same port. State (orders, account) survives."""
        if self._down or self._stopped:
            return
        self._down = True
        log.info("sim_gateway_restart", down_seconds=down_seconds, port=self.port)
        if self._server is not None:
            self._server.close()
        self.registry.close_all("gateway restart")
        await self.save_state()
        try:
            await asyncio.sleep(max(0.0, down_seconds))
            for attempt in range(10):
                if self._stopped:
                    break
                try:
                    await self._listen(self.port)
                    log.info("sim_gateway_back", port=self.port)
                    break
                except OSError as exc:  # the port is briefly busy: try again shortly
                    log.warning("sim_gateway_rebind_failed", port=self.port, attempt=attempt + 1, error=str(exc))
                    await asyncio.sleep(0.2)
        finally:
            self._down = False

    async def stop(self) -> None:
        """Close every socket and the listener; persist state when a state file is set."""
        if self._stopped:
            return
        self._stopped = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        self.registry.close_all("exchange stopping")
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except TimeoutError:
                log.warning("sim_listener_close_slow", port=self.port)
        if self._conn_tasks:
            _, pending = await asyncio.wait(list(self._conn_tasks), timeout=2.0)
            for t in pending:
                t.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.save_state()
        self.delivery.release()  # the sockets are closed: nothing is sent, nothing stays held
        log.info("sim_exchange_stopped", port=self.port)

    # ----- persistence ----------------------------------------------------------------------
    def _save_soon(self) -> None:
        if self.state_path is None or self._save_pending or self._stopped:
            return
        self._save_pending = True

        async def later() -> None:
            try:
                await self.save_state()
            finally:
                self._save_pending = False

        self.spawn(later(), "sim-save-state")

    def to_state(self) -> dict[str, Any]:
        """Everything a restarted exchange needs (see ``state.exchange_state``)."""
        return exchange_state(self)

    def _persist(self, state: dict, orders: list, executions: list) -> None:
        """The record of orders and executions first, then the state file (both before publishing)."""
        if self.audit is not None:
            self.audit.append(orders, executions)
        assert self.state_path is not None
        save_state(self.state_path, state)

    async def save_state(self) -> None:
        """Write the state file now (atomic); no-op without ``state_path``."""
        if self.state_path is None:
            return
        async with self._save_lock:  # one writer at a time, so a newer snapshot always lands last
            state = self.to_state()
            orders, executions = list(self.book.orders.values()), list(self.book.executions)
            await asyncio.to_thread(self._persist, state, orders, executions)
        log.debug("sim_state_saved", path=str(self.state_path))

