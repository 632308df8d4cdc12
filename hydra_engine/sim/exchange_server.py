"""``EmbeddedExchange``: the asyncio server, its client registry, order routing and time.

One exchange per process owns the clock, the universe, the accounts and the order book. Client
sessions (``session.py``) decode requests and answer read-only ones themselves; everything that
changes state (orders, cancels, time, faults, restarts) goes through this class, so the ordering
of messages to every client is decided in one place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import structlog

from . import messages as M
from .account import Account, AccountSnapshot, PositionState
from .datafeed import DataFeed, wire_contract
from .faults import FaultPlan
from .marking import AccountMarker
from .market_types import MarketUniverse
from .orders import ACTIVE, DONE, Execution, OrderBook, WorkingOrder
from .requests import CancelOrder, PlaceOrder, ReqGlobalCancel, ReqOpenOrders
from .routing import OrderRouting
from .session import ClientSession
from .state import exchange_state, load_state, restore_exchange, save_state

log = structlog.get_logger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
EXEC_DAY_TZ = ZoneInfo("America/New_York")
"""Executions are replayed for the current calendar day in New York, as IB resets them."""
SETTLE_LOOP_TURNS = 6
"""Event-loop turns ``advance_to`` yields first, so an order a client on the same loop has just
written is booked before time moves (the embedded, lock-step case)."""
REALTIME_STEP_S = 0.2
STATE_SAVE_INTERVAL_S = 5.0
"""In the background modes the clock alone is persisted at most this often (real seconds)."""
"""In real-time and fixed-speed modes the exchange plays the clock forward this often (real s)."""


class EmbeddedExchange(OrderRouting):
    """IB-compatible paper exchange on loopback. Build it with ``await EmbeddedExchange.start()``."""

    def __init__(self) -> None:  # use start()
        self.host = "127.0.0.1"
        self.port = 0
        self.clock: Any = None
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
        self._accounts: dict[str, Account] = {}
        self._sessions: set[ClientSession] = set()
        self._by_client: dict[int, ClientSession] = {}
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._conn_tasks: set[asyncio.Task] = set()
        self._down = False
        self._stopped = False
        self._last_t: dt.datetime
        self._advance_lock = asyncio.Lock()
        self._ticker: asyncio.Task | None = None
        self._wire_cache: dict[int, M.WireContract | None] = {}
        self._marks_at: dt.datetime | None = None
        self._marks: dict[int, float | None] = {}
        self._save_pending = False
        self._save_lock = asyncio.Lock()
        self.faults = FaultPlan(None)
        self.feed: DataFeed
        self.book: OrderBook
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
        clock: Any | None = None,
        universe: MarketUniverse | None = None,
        faults: str | None = None,
        state_path: Path | None = None,
        accounts: Sequence[str] = ("DU1234567",),
        starting_cash: float = 1_000_000.0,
        max_server_version: int = 178,
        pacing: bool = True,
    ) -> "EmbeddedExchange":
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the embedded exchange binds to loopback only (host {host!r}; accepted: "
                             f"{', '.join(LOOPBACK_HOSTS)})")  # fmt: skip
        if not 157 <= max_server_version <= 178:
            raise ValueError(f"max_server_version {max_server_version} outside 157..178")
        if not accounts or any(not a for a in accounts):
            raise ValueError("accounts must be a non-empty list of account ids")
        if not 0 < starting_cash < 1e12:
            raise ValueError(f"starting_cash {starting_cash} outside (0, 1e12)")
        ex = cls()
        ex.host, ex.seed, ex.max_server_version, ex.pacing = host, seed, max_server_version, pacing
        ex.state_path = Path(state_path) if state_path else None
        ex.faults = FaultPlan(faults, seed)
        if universe is None:
            from .universe import build_universe

            universe = await asyncio.to_thread(build_universe, seed)
        ex.universe = universe
        ex.feed = DataFeed(universe)
        saved = await asyncio.to_thread(load_state, ex.state_path) if ex.state_path else None
        if clock is None:
            from .clock import SimClock

            start = getattr(universe, "default_clock_start", lambda: dt.datetime(2018, 1, 2, 12, tzinfo=dt.timezone.utc))()
            if saved:
                start = max(start, dt.datetime.fromisoformat(saved["clock"]))
            clock = SimClock.lockstep(start)
        ex.clock = clock
        if saved and ex.lockstep and dt.datetime.fromisoformat(saved["clock"]) > clock.now():
            clock.set(dt.datetime.fromisoformat(saved["clock"]))
        if hasattr(universe, "bind_clock"):
            universe.bind_clock(clock)
        ex.accounts = list(accounts)
        ex._accounts = {a: Account(a, starting_cash) for a in ex.accounts}
        # A fresh exchange draws a run id so execIds and permIds never repeat across runs (an engine
        # store may outlive an exchange without a state file); a resumed one keeps its own.
        run_id = secrets.randbits(32)
        ex.book = OrderBook(ex.feed, ex._accounts, exec_prefix=f"{run_id:08x}")
        ex.book.next_perm_id = 100_000_000 + (run_id % 1_000) * 1_000_000
        ex._last_t = clock.now()
        ex.marker = AccountMarker(ex, ex._last_t)
        if saved:
            ex._restore(saved)
        await ex._listen(port)
        if ex.lockstep is False:
            ex._ticker = asyncio.create_task(ex._tick_loop(), name="sim-exchange-ticker")
        log.info("sim_exchange_started", host=host, port=ex.port, seed=seed, clock=getattr(clock, "mode", "?"),
                 now=ex._last_t.isoformat(), accounts=ex.accounts, faults=ex.faults.spec or None,
                 resumed=bool(saved), max_server_version=max_server_version)  # fmt: skip
        return ex

    @property
    def lockstep(self) -> bool:
        return getattr(self.clock, "mode", "lockstep") == "lockstep"

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down or self._stopped:
            writer.close()
            return
        s = ClientSession(self, reader, writer)
        self._sessions.add(s)
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

    # ----- registry -------------------------------------------------------------------------
    def _client_in_use(self, client_id: int) -> bool:
        s = self._by_client.get(client_id)
        return s is not None and not s.closed

    def _register(self, s: ClientSession) -> None:
        assert s.client_id is not None
        self._by_client[s.client_id] = s

    def _unregister(self, s: ClientSession) -> None:
        self._sessions.discard(s)
        if s.client_id is not None and self._by_client.get(s.client_id) is s:
            del self._by_client[s.client_id]

    def _spawn(self, coro: Any, name: str) -> None:
        t = asyncio.create_task(coro, name=name)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    @property
    def clients(self) -> list[int]:
        """Client ids of the connected, started sessions."""
        return sorted(cid for cid, s in self._by_client.items() if not s.closed)

    # ----- helpers for sessions -------------------------------------------------------------
    def _wire(self, con_id: int) -> M.WireContract | None:
        if con_id not in self._wire_cache:
            m = self.universe.month(con_id)
            spec = self.universe.spec(m.symbol) if m else None
            self._wire_cache[con_id] = wire_contract(spec, m) if (m and spec) else None
        return self._wire_cache[con_id]

    def _currency(self, account: str) -> str:
        a = self._accounts.get(account)
        return a.currency if a else "USD"

    def _exec_view(self, e: Execution, c: M.WireContract) -> M.ExecutionView:
        return M.ExecutionView(e.exec_id, e.order_id, e.client_id, e.perm_id, e.time, e.account, c.exchange,
                               e.side, e.qty, e.price, e.cum_qty, e.avg_price, e.order_ref)  # fmt: skip

    def _snapshot(self, acct: str) -> tuple[AccountSnapshot, dict[int, float]]:
        now = self.clock.now()
        if self._marks_at != now:
            self._marks_at, self._marks = now, {}
        a = self._accounts[acct]
        marks: dict[int, float] = {}
        for p in a.open_positions():
            if p.con_id not in self._marks:
                self._marks[p.con_id] = self.feed.mark(p.con_id, now)
            m = self._marks[p.con_id]
            if m is not None:
                marks[p.con_id] = m
        return a.snapshot(marks), marks

    # ----- public queries -------------------------------------------------------------------
    def executions_today(self) -> list[Execution]:
        """Executions of the current New York calendar day (what IB replays on reconnect)."""
        today = self.clock.now().astimezone(EXEC_DAY_TZ).date()
        return [e for e in self.book.executions if e.time.astimezone(EXEC_DAY_TZ).date() == today]

    def positions(self, account: str | None = None) -> dict[int, PositionState]:
        """Open positions of ``account`` (default: the first) by conId."""
        a = self._accounts[account or self.accounts[0]]
        return {p.con_id: p for p in a.open_positions()}

    def account_values(self, account: str | None = None) -> dict[str, float]:
        """IB account tags (NetLiquidation, TotalCashValue, ...) at the current marks."""
        return self._snapshot(account or self.accounts[0])[0].as_tags()

    def open_orders(self) -> list[WorkingOrder]:
        return self.book.working()

    def completed_orders_today(self) -> list[WorkingOrder]:
        """Orders filled, cancelled or rejected today (New York day): what reqCompletedOrders lists."""
        today = self.clock.now().astimezone(EXEC_DAY_TZ).date()
        return [o for o in self.book.orders.values()
                if o.status in DONE and o.done_at is not None and o.done_at.astimezone(EXEC_DAY_TZ).date() == today]

    # ----- request dispatch -----------------------------------------------------------------
    def _dispatch(self, s: ClientSession, req: object) -> None:
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
                self._open_orders(s, req.all_clients)
            elif isinstance(req, ReqGlobalCancel):
                for o in self.book.working():
                    self._deliver(self.book.cancel(o.client_id, o.order_id, self.clock.now()).events)
            else:
                name = ClientSession.HANDLERS.get(type(req))
                if name is None:
                    s.error(-1, 505, f"Fatal Error: Unknown message {type(req).__name__}.")
                    return
                getattr(s, name)(req)
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
        delay = max((f.param("s") for f in faults if f.kind == "delay_ack"), default=0.0)
        self._deliver(out.events, delay=delay)
        self._after_faults(faults, s)
        self._save_soon()

    def _cancel(self, s: ClientSession, req: CancelOrder) -> None:
        assert s.client_id is not None
        faults = self.faults.on_cancel()
        o = self.book.orders.get((s.client_id, req.order_id))
        if any(f.kind == "cancel_race" for f in faults) and o is not None and o.status in ACTIVE:
            now = self.clock.now()
            price = self.feed.mark(o.con_id, now) or o.lmt_price or o.avg_fill_price
            log.info("sim_fault_cancel_race", client_id=s.client_id, order_id=o.order_id, price=price)
            self._deliver([self.book.fill_now(o, now, price)])
        out = self.book.cancel(s.client_id, req.order_id, self.clock.now())
        if out.error:
            s.error(req.order_id, *out.error)
        self._deliver(out.events)
        self._after_faults(faults, s)
        self._save_soon()

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
                            for s in list(self._by_client.values()):
                                s.close("injected fault: drop")
                    self._after_faults([f for f in due if f.kind != "drop"], None)
                self._prune(t)
                self.marker.on_time(t)
            for s in list(self._by_client.values()):
                s.refresh_market_data(t)
        finally:
            self.busy_seconds += time.perf_counter() - t0
            self.busy_cpu_seconds += time.thread_time() - c0
        return n

    def _prune(self, t: dt.datetime) -> None:
        """Keep a week of executions and finished orders; older ones are never replayed."""
        horizon = t - dt.timedelta(days=7)
        if self.book.executions and self.book.executions[0].time < horizon:
            self.book.executions = [e for e in self.book.executions if e.time >= horizon]
        done = [k for k, o in self.book.orders.items() if o.status not in ACTIVE and o.matched_until < horizon]
        for k in done:
            del self.book.orders[k]

    async def _flush_all(self) -> None:
        sessions = [s for s in self._sessions if not s.closed]
        if sessions:
            await asyncio.gather(*(s.flush() for s in sessions))

    async def _tick_loop(self) -> None:
        last_save = time.monotonic()
        while not self._stopped:
            try:
                async with self._advance_lock:
                    n = self._play(self.clock.now())
                await self._flush_all()
                if n or time.monotonic() - last_save > STATE_SAVE_INTERVAL_S:
                    self._save_soon()  # orders changed, or the clock moved on: persist
                    last_save = time.monotonic()
            except Exception:  # keep ticking: a bug in one step must not freeze the market
                log.exception("sim_tick_failed")
            await asyncio.sleep(REALTIME_STEP_S)

    # ----- restart / stop -------------------------------------------------------------------
    def _close_all(self, reason: str) -> None:
        for s in list(self._sessions):
            s.close(reason)

    async def restart(self, down_seconds: float) -> None:
        """Gateway restart: close every socket, refuse connections for ``down_seconds`` real
        seconds, then listen again on the same port. State (orders, account) survives."""
        if self._down or self._stopped:
            return
        self._down = True
        log.info("sim_gateway_restart", down_seconds=down_seconds, port=self.port)
        if self._server is not None:
            self._server.close()
        self._close_all("gateway restart")
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
        self._close_all("exchange stopping")
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                log.warning("sim_listener_close_slow", port=self.port)
        if self._conn_tasks:
            _, pending = await asyncio.wait(list(self._conn_tasks), timeout=2.0)
            for t in pending:
                t.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.save_state()
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

        self._spawn(later(), "sim-save-state")

    def to_state(self) -> dict[str, Any]:
        """Everything a restarted exchange needs (see ``state.exchange_state``)."""
        return exchange_state(self)

    async def save_state(self) -> None:
        """Write the state file now (atomic); no-op without ``state_path``."""
        if self.state_path is None:
            return
        async with self._save_lock:  # one writer at a time, so a newer snapshot always lands last
            state = self.to_state()
            await asyncio.to_thread(save_state, self.state_path, state)
        log.debug("sim_state_saved", path=str(self.state_path))

    def _restore(self, d: dict[str, Any]) -> None:
        restore_exchange(self, d)
