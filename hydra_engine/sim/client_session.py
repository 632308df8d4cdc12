"""One client connection: handshake, the read loop, and the answers to read-only requests.

It reaches the exchange only through ``ExchangeCore`` (``exchange_core.py``): decoded requests go
to ``core.submit``, which hands the read-only ones back to ``answer``.

Bad input never takes the exchange down: a malformed frame closes this one connection, an
unknown message id gets error 505 and a garbage field error 320 (both logged with the field
name), and every other client keeps being served.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from dataclasses import dataclass, field

import structlog

from . import messages as M
from .data_requests import DataRequests
from .datafeed import Pacer, parse_end, tick_messages
from .exchange_core import ExchangeCore
from .marking import snapshot_key
from .pnl_streams import PnLCalculator, PnLStreams
from .requests import (
    CancelAccountSummary,
    CancelAccountUpdatesMulti,
    CancelMktData,
    CancelPositions,
    ReqAccountSummary,
    ReqAccountUpdates,
    ReqAccountUpdatesMulti,
    ReqAutoOpenOrders,
    ReqCompletedOrders,
    ReqContractDetails,
    ReqCurrentTime,
    ReqExecutions,
    ReqIds,
    ReqManagedAccts,
    ReqMarketDataType,
    ReqMktData,
    ReqPositions,
    RequestError,
    StartApi,
    UnknownMessage,
    decode_request,
    request_id_of,
)  # fmt: skip
from .wire import (
    FrameError,
    decode_payload,
    encode_frame,
    handshake_reply,
    negotiate_version,
    read_hello,
    read_payload,
)
from .wire_views import exec_view, order_view

log = structlog.get_logger(__name__)
_conn_ids = itertools.count(1)

ALL_SUMMARY_TAGS = (
    "NetLiquidation", "TotalCashValue", "GrossPositionValue", "AvailableFunds", "ExcessLiquidity",
    "InitMarginReq", "MaintMarginReq", "BuyingPower", "EquityWithLoanValue", "SettledCash",
    "FullInitMarginReq", "FullMaintMarginReq", "FullAvailableFunds", "FullExcessLiquidity",
)  # fmt: skip


@dataclass(slots=True)
class MktSub:
    req_id: int
    con_id: int
    delayed: bool
    last: dict[str, float] = field(default_factory=dict)


class ClientSession:
    """State and I/O of one API connection."""

    def __init__(self, core: ExchangeCore, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.core = core
        self.reader = reader
        self.writer = writer
        self.conn_id = next(_conn_ids)
        self.client_id: int | None = None
        self.version = 0
        self.closed = False
        self.ready = asyncio.Event()
        self.closed_event = asyncio.Event()
        self.starting = False
        self.account_updates: str | None = None
        self.positions_sub = False
        self.summary_subs: dict[int, tuple[str, ...]] = {}
        self.multi_subs: dict[int, str] = {}
        self.sent_marks: dict[tuple, object] = {}
        """Per account subscription, the values it was last sent (see ``refresh_account_subscriptions``)."""
        self.mkt: dict[int, MktSub] = {}
        self.market_data_type = 1
        self.pacer = Pacer()
        self.end_delay = 0.0
        """Real seconds to hold END messages (fault: a slow END at connect)."""
        self.data = DataRequests(self)
        """History, reference data and streams beyond quotes (``data_requests.py``)."""
        self.pnl = PnLStreams(self, PnLCalculator(core.account_book, core.feed), lambda: list(core.accounts),
                              core.clock.now)  # fmt: skip
        """reqPnL / reqPnLSingle subscriptions (``pnl_streams.py``)."""
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    # ----- output ---------------------------------------------------------------------------
    def send(self, fields: M.Fields) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(encode_frame(fields))

    def send_later(self, delay: float, batch: list[M.Fields]) -> None:
        """Deliver a batch after ``delay`` real seconds (fault: delayed ack, fill or END)."""
        def send_all() -> None:
            for f in batch:
                self.send(f)

        if delay <= 0:
            send_all()
            return
        asyncio.get_running_loop().call_later(delay, send_all)

    def send_end(self, fields: M.Fields) -> None:
        self.send_later(self.end_delay, [fields])

    def error(self, req_id: int, code: int, text: str) -> None:
        self.send(M.error(req_id, code, text, self.version))

    async def flush(self, timeout: float = 5.0) -> None:
        if self.closed or self.writer.is_closing():
            return
        try:
            await asyncio.wait_for(self.writer.drain(), timeout)
        except (TimeoutError, ConnectionError) as exc:
            self.close(f"flush failed: {exc!r}")

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.closed_event.set()
        self.data.streams.clear()
        self.pnl.clear()
        log.info("sim_client_closed", conn=self.conn_id, client_id=self.client_id, reason=reason)
        try:
            self.writer.close()
        except Exception:  # socket already gone
            pass
        self.core.unregister(self)

    # ----- requests the exchange hands back -----------------------------------------------------
    def answer(self, req: object) -> None:
        """Answer a read-only request (``core.submit`` keeps the state-changing ones)."""
        if self.data.handle(req) or self.pnl.handle(req):
            return
        name = self.HANDLERS.get(type(req))
        if name is None:
            self.error(-1, 505, f"Fatal Error: Unknown message {type(req).__name__}.")
            return
        getattr(self, name)(req)

    # ----- read loop ------------------------------------------------------------------------
    async def run(self) -> None:
        log.debug("sim_client_connected", conn=self.conn_id, peer=self.peer)
        try:
            hello = await asyncio.wait_for(read_hello(self.reader), 10)
            self.version = negotiate_version(hello, self.core.max_server_version)
            self.writer.write(handshake_reply(self.version, self.core.clock.now()))
            while not self.closed:
                try:
                    payload = await read_payload(self.reader)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        log.warning("sim_client_disconnected_mid_message", conn=self.conn_id,
                                    client_id=self.client_id, bytes=len(exc.partial))  # fmt: skip
                    self.close("peer closed")
                    return
                self._handle_payload(payload)
        except FrameError as exc:
            log.warning("sim_malformed_frame", conn=self.conn_id, client_id=self.client_id, error=str(exc))
            self.close(f"malformed frame: {exc}")
        except asyncio.IncompleteReadError:
            self.close("peer closed during handshake")
        except TimeoutError:
            self.close("handshake timed out")
        except (ConnectionError, OSError) as exc:
            self.close(f"socket error: {exc!r}")
        except asyncio.CancelledError:
            self.close("server stopping")
        except Exception as exc:  # a bug must cost one connection, never the exchange
            log.exception("sim_session_crashed", conn=self.conn_id, client_id=self.client_id)
            self.close(f"internal error: {exc!r}")

    def _handle_payload(self, payload: bytes) -> None:
        fields = decode_payload(payload)
        try:
            req = decode_request(fields, self.version)
        except UnknownMessage as exc:
            log.warning("sim_unknown_message", conn=self.conn_id, client_id=self.client_id, msg_id=exc.msg_id)
            self.error(-1, 505, f"Fatal Error: Unknown message id {exc.msg_id}.")
            return
        except RequestError as exc:
            log.warning("sim_bad_request", conn=self.conn_id, client_id=self.client_id, msg_id=exc.msg_id,
                        field=exc.field, value=exc.value[:40], reason=exc.reason)  # fmt: skip
            self.error(request_id_of(fields), 320, f"Server error when reading an API client request: {exc}")
            return
        if self.client_id is None and not isinstance(req, StartApi):
            log.warning("sim_request_before_start_api", conn=self.conn_id, request=type(req).__name__)
            self.error(-1, 321, "Error validating request: API not started (send START_API first)")
            return
        try:
            self.core.submit(self, req)
        except Exception as exc:  # one failed request costs that request, not the connection
            log.exception("sim_request_failed", conn=self.conn_id, client_id=self.client_id, request=type(req).__name__)
            self.error(request_id_of(fields), 322, f"Error processing request: {type(req).__name__}: {exc}")

    # ----- start ----------------------------------------------------------------------------
    def start_api(self, req: StartApi) -> None:
        if self.client_id is not None:
            return
        if self.starting:
            return
        old = self.core.client(req.client_id)
        if old is not None and not old.closed:
            # The previous connection of this id may be closing right now (a quick reconnect):
            # give it a moment before refusing, as the gateway notices a closed socket too.
            self.starting = True
            self.core.spawn(self._start_when_free(req, old), "sim-start-api")
            return
        self._accept(req)

    async def _start_when_free(self, req: StartApi, old: ClientSession) -> None:
        try:
            await asyncio.wait_for(old.closed_event.wait(), 0.5)
        except TimeoutError:
            log.warning("sim_duplicate_client_id", conn=self.conn_id, client_id=req.client_id)
            self.error(-1, 326, f"Unable to connect as the client id {req.client_id} is already in use. "
                       "Retry with a unique client id.")  # fmt: skip
            await self.flush()
            self.close("duplicate client id")
            return
        if not self.closed:
            self._accept(req)

    def _accept(self, req: StartApi) -> None:
        self.client_id = req.client_id
        self.core.register(self)
        self.send(M.managed_accounts(self.core.accounts))
        self.send(M.next_valid_id(self.core.next_valid_id(req.client_id)))
        for code, text in (
            (2104, "Market data farm connection is OK:usfarm"),
            (2106, "HMDS data farm connection is OK:ushmds"),
            (2158, "Sec-def data farm connection is OK:secdefil"),
        ):
            self.error(-1, code, text)
        self.ready.set()
        log.info("sim_client_ready", conn=self.conn_id, client_id=req.client_id, server_version=self.version)

    # ----- account and positions ------------------------------------------------------------
    def positions(self, req: ReqPositions) -> None:
        self.positions_sub = True
        for acct in self.core.accounts:
            for p in self.core.account_book.get(acct).open_positions():
                self._send_position(acct, p.con_id)
        self.send_end(M.position_end())

    def cancel_positions(self, req: CancelPositions) -> None:
        self.positions_sub = False

    def _send_position(self, acct: str, con_id: int) -> None:
        c = self.core.wire(con_id)
        p = self.core.account_book.get(acct).positions.get(con_id)
        if c is not None and p is not None:
            self.send(M.position(acct, c, p.qty, round(p.avg_cost, 6)))

    def account_updates_req(self, req: ReqAccountUpdates) -> None:
        acct = req.account or self.core.accounts[0]
        if not req.subscribe:
            self.account_updates = None
            self.sent_marks = {k: v for k, v in self.sent_marks.items() if k[0] != "upd"}
            return
        if acct not in self.core.account_book:
            self.error(-1, 321, f"Error validating request: account {acct!r} is not managed by this login")
            return
        self.account_updates = acct
        self.push_account(acct, None)
        self.send_end(M.account_download_end(acct))

    def push_account(self, acct: str, con_ids: set[int] | None) -> None:
        """ACCT_VALUE rows and PORTFOLIO_VALUE for every open position plus ``con_ids`` (those a
        fill just closed), all at the current marks."""
        snap, marks = self.core.account_book.snapshot(acct)
        self.sent_marks[("upd", acct)] = snapshot_key(snap, marks)
        cur = snap.currency
        for key, value in snap.as_tags().items():
            self.send(M.account_value(key, f"{value:.2f}", cur, acct))
        self.send(M.account_value("AccountCode", acct, "", acct))
        self.send(M.account_value("AccountType", "INDIVIDUAL", "", acct))
        self.send(M.account_value("Currency", cur, cur, acct))
        account = self.core.account_book.get(acct)
        ids = {p.con_id for p in account.open_positions()} | (con_ids or set())
        for cid in sorted(ids):
            p = account.positions.get(cid)
            c = self.core.wire(cid)
            if p is None or c is None:
                continue
            mark = marks.get(cid, p.avg_cost / p.multiplier if p.multiplier else 0.0)
            mv = p.qty * mark * p.multiplier
            self.send(M.portfolio_value(c, p.qty, mark, round(mv, 2), round(p.avg_cost, 6),
                                        round(mv - p.qty * p.avg_cost, 2), round(p.realized_pnl, 2), acct))  # fmt: skip
        self.send(M.account_update_time(self.core.clock.now()))

    def account_updates_multi(self, req: ReqAccountUpdatesMulti) -> None:
        accts = self.core.accounts if req.account in ("", "All") else [req.account]
        if any(a not in self.core.account_book for a in accts):
            self.error(req.req_id, 321, f"Error validating request: account {req.account!r} is not managed")
            return
        self.multi_subs[req.req_id] = req.account
        for a in accts:
            self._multi_rows(req.req_id, a)
        self.send_end(M.account_update_multi_end(req.req_id))

    def _multi_rows(self, req_id: int, acct: str) -> None:
        snap, _ = self.core.account_book.snapshot(acct)
        self.sent_marks[("multi", req_id, acct)] = snap
        for key, value in snap.as_tags().items():
            self.send(M.account_update_multi(req_id, acct, key, f"{value:.2f}", snap.currency))

    def cancel_multi(self, req: CancelAccountUpdatesMulti) -> None:
        self.multi_subs.pop(req.req_id, None)
        self.sent_marks = {k: v for k, v in self.sent_marks.items() if k[:2] != ("multi", req.req_id)}

    def account_summary(self, req: ReqAccountSummary) -> None:
        wanted = tuple(t.strip() for t in req.tags.split(",") if t.strip())
        if "$LEDGER" in wanted or "$LEDGER:ALL" in wanted or not wanted:
            wanted = ALL_SUMMARY_TAGS
        self.summary_subs[req.req_id] = wanted
        self._summary_rows(req.req_id, wanted)
        self.send_end(M.account_summary_end(req.req_id))

    def _summary_rows(self, req_id: int, wanted: tuple[str, ...]) -> None:
        self.sent_marks[("sum", req_id)] = tuple(self.core.account_book.snapshot(a)[0] for a in self.core.accounts)
        for acct in self.core.accounts:
            snap, _ = self.core.account_book.snapshot(acct)
            tags = snap.as_tags()
            for tag in wanted:
                if tag == "AccountType":
                    self.send(M.account_summary(req_id, acct, tag, "INDIVIDUAL", ""))
                elif tag in tags:
                    self.send(M.account_summary(req_id, acct, tag, f"{tags[tag]:.2f}", snap.currency))

    def cancel_summary(self, req: CancelAccountSummary) -> None:
        self.summary_subs.pop(req.req_id, None)
        self.sent_marks.pop(("sum", req.req_id), None)

    def has_account_subscriptions(self) -> bool:
        return bool(self.account_updates or self.summary_subs or self.multi_subs)

    def refresh_account_subscriptions(self) -> int:
        """Re-send each account subscription whose values changed since last sent; returns how many."""
        book = self.core.account_book
        n = 0
        acct = self.account_updates
        if acct is not None and acct in book:
            snap, marks = book.snapshot(acct)
            if self.sent_marks.get(("upd", acct)) != snapshot_key(snap, marks):
                self.push_account(acct, None)
                n += 1
        if self.summary_subs:
            key = tuple(book.snapshot(a)[0] for a in self.core.accounts)
            for req_id, wanted in list(self.summary_subs.items()):
                if self.sent_marks.get(("sum", req_id)) != key:
                    self._summary_rows(req_id, wanted)
                    n += 1
        for req_id, which in list(self.multi_subs.items()):
            for a in (self.core.accounts if which in ("", "All") else [which]):
                if a in book and self.sent_marks.get(("multi", req_id, a)) != book.snapshot(a)[0]:
                    self._multi_rows(req_id, a)
                    n += 1
        return n

    def on_account_change(self, acct: str, con_ids: set[int]) -> None:
        """Push what subscribers of this session see after a fill."""
        if self.account_updates == acct:
            self.push_account(acct, con_ids)
        if self.positions_sub:
            for cid in sorted(con_ids):
                self._send_position(acct, cid)
        for req_id, wanted in self.summary_subs.items():
            self._summary_rows(req_id, wanted)
        for req_id, a in self.multi_subs.items():
            if a in ("", "All", acct):
                self._multi_rows(req_id, acct)
        self.pnl.refresh()

    # ----- executions and orders queries ----------------------------------------------------
    def executions(self, req: ReqExecutions) -> None:
        since = None
        if req.time:
            try:
                since = parse_end(req.time.replace("-", " ", 1) if req.time[8:9] == "-" else req.time, self.core.clock.now())
            except ValueError:
                self.error(req.req_id, 321, f"Error validating request: execution filter time {req.time!r}")
                return
        for e in self.core.executions_today():
            c = self.core.wire(e.con_id)
            if c is None:
                continue
            if req.client_id and e.client_id != req.client_id:
                continue
            if req.account and e.account != req.account:
                continue
            if req.symbol and c.symbol != req.symbol:
                continue
            if req.sec_type and c.sec_type != req.sec_type:
                continue
            if req.side and {"BUY": "BOT", "SELL": "SLD"}.get(req.side, req.side) != e.side:
                continue
            if since is not None and e.time < since:
                continue
            self.send(M.execution_data(req.req_id, c, exec_view(e, c), self.version))
            self.send(M.commission_report(e.exec_id, e.commission, self.core.account_book.currency(e.account),
                                          e.realized_pnl))  # fmt: skip
        self.send_end(M.execution_data_end(req.req_id))

    def completed_orders(self, req: ReqCompletedOrders) -> None:
        for o in self.core.completed_orders_today():
            c = self.core.wire(o.con_id)
            if c is not None and o.done_at is not None:
                self.send(M.completed_order(c, order_view(o), o.filled, o.done_at, self.version))
        self.send_end(M.completed_orders_end())

    def auto_open_orders(self, req: ReqAutoOpenOrders) -> None:
        if self.client_id != 0:
            self.error(-1, 327, "Only API connections with clientId set to 0 can set the auto bind TWS orders property.")

    # ----- misc -----------------------------------------------------------------------------
    def current_time(self, req: ReqCurrentTime) -> None:
        self.send(M.current_time(self.core.clock.now()))

    def ids(self, req: ReqIds) -> None:
        self.send(M.next_valid_id(self.core.next_valid_id(self.client_id or 0)))

    def managed_accts(self, req: ReqManagedAccts) -> None:
        self.send(M.managed_accounts(self.core.accounts))

    # ----- contracts and history ------------------------------------------------------------
    def contract_details(self, req: ReqContractDetails) -> None:
        now = self.core.clock.now()
        found = self.core.feed.resolve(req.contract, now, req.include_expired)
        if not found:
            log.info("sim_unknown_contract", client_id=self.client_id, contract=req.contract.describe())
            self.error(req.req_id, 200, "No security definition has been found for the request")
            return
        for r in found:
            self.send(M.contract_data(req.req_id, self.core.feed.details(r, now), self.version))
        self.send(M.contract_data_end(req.req_id))

    # ----- market data ----------------------------------------------------------------------
    def market_data_type_req(self, req: ReqMarketDataType) -> None:
        if req.data_type not in (1, 2, 3, 4):
            self.error(-1, 321, f"Error validating request: market data type {req.data_type} (accepted 1-4)")
            return
        self.market_data_type = req.data_type

    def mkt_data(self, req: ReqMktData) -> None:
        now = self.core.clock.now()
        found = self.core.feed.resolve(req.contract, now, False)
        if not found or found[0].sec_type == "CONTFUT":
            self.error(req.req_id, 200, "No security definition has been found for the request")
            return
        if len(found) > 1:
            self.error(req.req_id, 200, "The contract description is ambiguous; specify the contract month")
            return
        delayed = self.market_data_type in (3, 4)
        sub = MktSub(req.req_id, found[0].month.con_id, delayed)
        self.send(M.market_data_type(req.req_id, self.market_data_type))
        self._send_ticks(sub, now)
        if req.snapshot or req.regulatory_snapshot:
            self.send(M.tick_snapshot_end(req.req_id))
        else:
            self.mkt[req.req_id] = sub

    def cancel_mkt_data(self, req: CancelMktData) -> None:
        self.mkt.pop(req.req_id, None)

    def _send_ticks(self, sub: MktSub, now: dt.datetime) -> None:
        values = self.core.feed.ticks(sub.con_id, now, sub.delayed)
        for kind, tt, price, size in tick_messages(values, sub.last, sub.delayed):
            if kind == "price":
                self.send(M.tick_price(sub.req_id, tt, price, size))
            else:
                self.send(M.tick_size(sub.req_id, tt, size))
        sub.last = values

    def refresh_market_data(self, now: dt.datetime) -> None:
        for sub in list(self.mkt.values()):
            self._send_ticks(sub, now)
        self.data.refresh(now)

    HANDLERS: dict[type, str] = {
        ReqPositions: "positions", CancelPositions: "cancel_positions",
        ReqAccountUpdates: "account_updates_req", ReqAccountUpdatesMulti: "account_updates_multi",
        CancelAccountUpdatesMulti: "cancel_multi", ReqAccountSummary: "account_summary",
        CancelAccountSummary: "cancel_summary", ReqExecutions: "executions",
        ReqCompletedOrders: "completed_orders", ReqAutoOpenOrders: "auto_open_orders",
        ReqCurrentTime: "current_time", ReqIds: "ids", ReqManagedAccts: "managed_accts",
        ReqContractDetails: "contract_details", ReqMarketDataType: "market_data_type_req",
        ReqMktData: "mkt_data", CancelMktData: "cancel_mkt_data", StartApi: "start_api",
    }  # fmt: skip
