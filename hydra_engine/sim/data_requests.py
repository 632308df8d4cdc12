"""A connection's answers to the history, reference-data and streaming requests (issue 9).

``ClientSession`` holds one ``DataRequests`` and hands it the requests in ``HANDLERS``. Requests
that read many sessions of the intraday paths are computed in a worker thread, so the event loop
never stalls; a request IB would refuse gets IB's error on its own id. When IB answers a history
request with a validation warning only (321, which ib_async does not treat as the end of the
request), the exchange also sends an empty answer, so the client's request ends instead of
waiting for its timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Protocol

import structlog

from . import bars as B
from . import messages as M
from .datafeed import Pacer, Resolved, parse_end
from .exchange_core import ExchangeCore
from .market_history import BarAnswer, HistoryRefusal, HistoryService
from .reference_data import (
    POLICIES, SCANNER_PARAMETERS_XML, depth_exchanges, market_rules, matching_symbols,
)  # fmt: skip
from .requests import (
    Cancel, CancelHistoricalData, OtherRequest, ReqHeadTimeStamp, ReqHistogramData, ReqHistoricalData, ReqHistoricalTicks, ReqMarketRule,
    ReqMatchingSymbols, ReqMktDepth, ReqPositionsMulti, ReqRealTimeBars, ReqSecDefOptParams, ReqTickByTick,
    SetServerLogLevel,
)  # fmt: skip
from .streams import RTB_SECONDS, TICK_TYPES, BarStream, DepthStream, RealTimeBarStream, Streams, TickStream

log = structlog.get_logger(__name__)
UTC = dt.timezone.utc
SCHEDULE_MIN_VERSION = 166
"""IB serves whatToShow=SCHEDULE from this server version on."""
_NO_SECDEF = "No security definition has been found for the request"


class SessionIO(Protocol):
    """What the data requests use of their client session."""

    core: ExchangeCore
    version: int
    client_id: int | None
    pacer: Pacer
    closed: bool

    def close(self, reason: str) -> None: ...

    def send(self, fields: M.Fields) -> None: ...

    def error(self, req_id: int, code: int, text: str) -> None: ...


class DataRequests:
    """History, reference data and streams for one connection."""

    def __init__(self, session: SessionIO) -> None:
        self.s = session
        self.history = HistoryService(session.core.feed)
        self.streams = Streams(self.history, session.send, lambda: session.version)

    @property
    def core(self) -> ExchangeCore:
        return self.s.core

    def handle(self, req: object) -> bool:
        """Answer ``req`` if it is one of ours; False otherwise."""
        name = HANDLERS.get(type(req))
        if name is None:
            return False
        getattr(self, name)(req)
        return True

    def refresh(self, now: dt.datetime) -> None:
        if self.streams:
            self.streams.refresh(now)

    # ----- helpers ------------------------------------------------------------------------
    def _resolve(self, req_id: int, contract: object, include_expired: bool, allow_contfut: bool) -> Resolved | None:
        now = self.core.clock.now()
        found = self.core.feed.resolve(contract, now, include_expired)  # type: ignore[arg-type]
        if not found or (found[0].sec_type == "CONTFUT" and not allow_contfut):
            self.s.error(req_id, 200, _NO_SECDEF)
            return None
        if len(found) > 1:
            self.s.error(req_id, 200, "The contract description is ambiguous; specify the contract month")
            return None
        return found[0]

    def _off_loop(self, req_id: int, work: Callable[[], object], done: Callable[[object], None],
                  refused: Callable[[HistoryRefusal], None]) -> None:  # fmt: skip
        """Run ``work`` in a thread, then ``done(result)`` (or ``refused``) back on the loop."""

        async def run() -> None:
            try:
                result = await asyncio.to_thread(work)
            except HistoryRefusal as exc:
                if not self.s.closed:
                    refused(exc)
                return
            except Exception as exc:  # a bug costs this request, never the connection
                log.exception("sim_data_request_failed", client_id=self.s.client_id, req_id=req_id)
                if not self.s.closed:
                    self.s.error(req_id, 322, f"Error processing request: {exc}")
                return
            if not self.s.closed:
                done(result)

        self.core.spawn(run(), "sim-data-request")

    def _end_history(self, req_id: int) -> None:
        """An empty HISTORICAL_DATA: ends a request IB answered with a warning only."""
        self.s.send(M.historical_data(req_id, "", "", []))

    def _refuse_history(self, req_id: int, exc: HistoryRefusal) -> None:
        self.s.error(req_id, exc.code, exc.text)
        if exc.code == 321:
            self._end_history(req_id)

    # ----- historical bars ----------------------------------------------------------------
    def historical(self, req: ReqHistoricalData) -> None:
        now = self.core.clock.now()
        r = self._resolve(req.req_id, req.contract, True, allow_contfut=True)
        if r is None:
            return
        faults = self.core.faults.on_hist()
        if any(f.kind == "drop" for f in faults):
            self.s.close("injected fault: drop at a historical-data request")
            return
        forced = any(f.kind == "pacing" for f in faults)
        key = (r.month.con_id, r.sec_type, req.end_date_time, req.bar_size, req.duration, req.what_to_show)
        pacer = self.s.pacer
        reason = "injected fault" if forced else (pacer.check(now, key, r.month.con_id) if self.core.pacing else None)
        if reason:
            log.info("sim_pacing_violation", client_id=self.s.client_id, reason=reason)
            self.s.error(req.req_id, 162, "Historical Market Data Service error message:Historical data request "
                         f"pacing violation ({reason})")  # fmt: skip
            return
        try:
            what = req.what_to_show.strip().upper()
            if what == "SCHEDULE":
                self._schedule(req, r, now)
                return
            bar_size = B.parse_bar_size(req.bar_size)
            duration = B.parse_duration(req.duration)
            what = self.history.check_what_to_show(what)
            end = min(parse_end(req.end_date_time, now), now)
            if req.keep_up_to_date and req.end_date_time.strip():
                raise HistoryRefusal(321, "Error validating request:-'End date not supported with live updates'")
            if req.keep_up_to_date and bar_size.period in ("W", "M"):
                raise HistoryRefusal(321, "Error validating request:-'keepUpToDate is served for intraday and "
                                     "daily bars only'")  # fmt: skip
        except HistoryRefusal as exc:
            self._refuse_history(req.req_id, exc)
            return
        except ValueError as exc:
            self._refuse_history(req.req_id, HistoryRefusal(321, f"Error validating request:-'{exc}'"))
            return

        def work() -> object:
            return self.history.bars(r, bar_size, duration, what, end, req.use_rth, req.format_date)

        def done(answer: object) -> None:
            assert isinstance(answer, BarAnswer)
            self.s.send(M.historical_data(req.req_id, answer.start, answer.end, answer.rows))
            if req.keep_up_to_date:
                self._keep_up_to_date(req, r, bar_size, what, answer)

        refused = lambda exc: self._refuse_history(req.req_id, exc)  # noqa: E731
        light = what == "TRADES" and not bar_size.intraday
        if light:  # daily TRADES bars come from the daily series: cheap, answered in order
            try:
                done(work())
            except HistoryRefusal as exc:
                refused(exc)
            return
        self._off_loop(req.req_id, work, done, refused)

    def _keep_up_to_date(self, req: ReqHistoricalData, r: Resolved, bar_size: B.BarSize, what: str,
                         answer: BarAnswer) -> None:  # fmt: skip
        full = self.streams.full("bars")
        if full:
            self.s.error(req.req_id, *full)
            return
        last = answer.bars[-1]
        key = int(last.start.timestamp()) if last.start is not None else (last.day.toordinal() if last.day else 0)
        date, o, h, lo, c, v, wap, n = answer.rows[-1]
        stream = BarStream(req.req_id, r, bar_size, what, req.use_rth, req.format_date, key, (date, o, h, lo, c, wap, v, n))
        self.streams.add("bars", req.req_id, stream)
        self.streams.refresh_one(stream, self.core.clock.now())

    def _schedule(self, req: ReqHistoricalData, r: Resolved, now: dt.datetime) -> None:
        if self.s.version < SCHEDULE_MIN_VERSION:
            self.s.error(req.req_id, 162, "Historical Market Data Service error message:whatToShow=SCHEDULE needs "
                         f"server version {SCHEDULE_MIN_VERSION} (this connection: {self.s.version})")  # fmt: skip
            return
        try:
            n, unit = B.parse_duration(req.duration)
            if unit != "D":
                raise HistoryRefusal(10295, "Only daily resolution supported for Schedule requests")
            end = min(parse_end(req.end_date_time, now), now)
            got = self.history.schedule(r, n, end, req.use_rth)
        except HistoryRefusal as exc:
            self._refuse_history(req.req_id, exc)
            return
        except ValueError as exc:
            self._refuse_history(req.req_id, HistoryRefusal(321, f"Error validating request:-'{exc}'"))
            return
        self.s.send(M.historical_schedule(req.req_id, got.start, got.end, got.time_zone, got.sessions))

    def cancel_historical(self, req: CancelHistoricalData) -> None:
        self.streams.cancel("bars", req.req_id)

    # ----- head timestamp, histogram, historical ticks ------------------------------------
    def head_time_stamp(self, req: ReqHeadTimeStamp) -> None:
        r = self._resolve(req.req_id, req.contract, True, allow_contfut=True)
        if r is None:
            return
        now = self.core.clock.now()
        try:
            self.history.check_what_to_show(req.what_to_show)
            stamp = self.history.head_timestamp(r, now, req.use_rth, req.format_date)
        except HistoryRefusal as exc:
            self.s.error(req.req_id, exc.code, exc.text)
            return
        self.s.send(M.head_timestamp(req.req_id, stamp))

    def histogram(self, req: ReqHistogramData) -> None:
        r = self._resolve(req.req_id, req.contract, True, allow_contfut=False)
        if r is None:
            return
        now = self.core.clock.now()
        self._off_loop(req.req_id, lambda: self.history.histogram(r, req.period, now, req.use_rth),
                       lambda rows: self.s.send(M.histogram_data(req.req_id, rows)),  # type: ignore[arg-type]
                       lambda exc: self.s.error(req.req_id, exc.code, exc.text))  # fmt: skip

    def historical_ticks(self, req: ReqHistoricalTicks) -> None:
        r = self._resolve(req.req_id, req.contract, True, allow_contfut=False)
        if r is None:
            return
        now = self.core.clock.now()
        what = req.what_to_show.strip().upper()
        if what not in ("TRADES", "BID_ASK", "MIDPOINT"):
            self.s.error(req.req_id, 321, f"Error validating request:-'whatToShow {req.what_to_show!r} is invalid "
                         "for historical ticks (accepted: TRADES, BID_ASK, MIDPOINT)'")  # fmt: skip
            self._end_ticks(req.req_id, what)
            return
        try:
            start = parse_end(req.start, now) if req.start.strip() else None
            end = parse_end(req.end, now) if req.end.strip() else None
        except ValueError as exc:
            self.s.error(req.req_id, 321, f"Error validating request:-'{exc}'")
            self._end_ticks(req.req_id, what)
            return

        def done(rows: object) -> None:
            self._send_ticks(req.req_id, what, rows)  # type: ignore[arg-type]

        def refused(exc: HistoryRefusal) -> None:
            self.s.error(req.req_id, exc.code, exc.text)
            if exc.code == 321:
                self._end_ticks(req.req_id, what)

        self._off_loop(req.req_id, lambda: self.history.historical_ticks(r, start, end, req.number_of_ticks, what,
                                                                          req.use_rth, now), done, refused)  # fmt: skip

    def _send_ticks(self, req_id: int, what: str, rows: list[tuple]) -> None:
        if what == "TRADES":
            self.s.send(M.historical_ticks_last(req_id, rows))
        elif what == "BID_ASK":
            self.s.send(M.historical_ticks_bid_ask(req_id, rows))
        else:
            self.s.send(M.historical_ticks_midpoint(req_id, rows))

    def _end_ticks(self, req_id: int, what: str) -> None:
        self._send_ticks(req_id, what if what in ("TRADES", "BID_ASK") else "MIDPOINT", [])

    # ----- streams ------------------------------------------------------------------------
    def mkt_depth(self, req: ReqMktDepth) -> None:
        r = self._resolve(req.req_id, req.contract, False, allow_contfut=False)
        if r is None:
            return
        full = self.streams.full("mktDepth")
        if full:
            self.s.error(req.req_id, *full)
            return
        d = DepthStream(req.req_id, r, req.num_rows, req.smart_depth)
        self.streams.add("mktDepth", req.req_id, d)
        self.streams.depth(d, self.core.clock.now(), first=True)

    def real_time_bars(self, req: ReqRealTimeBars) -> None:
        r = self._resolve(req.req_id, req.contract, False, allow_contfut=False)
        if r is None:
            return
        what = req.what_to_show.strip().upper()
        if req.bar_size != RTB_SECONDS or what not in ("TRADES", "MIDPOINT", "BID", "ASK"):
            self.s.error(req.req_id, 420, f"Invalid Real-time Query: bar size {req.bar_size} / whatToShow {what!r} "
                         "(accepted: 5 seconds; TRADES, MIDPOINT, BID, ASK)")  # fmt: skip
            return
        full = self.streams.full("realTimeBars")
        if full:
            self.s.error(req.req_id, *full)
            return
        now = int(self.core.clock.now().timestamp())
        self.streams.add("realTimeBars", req.req_id,
                         RealTimeBarStream(req.req_id, r, what, req.use_rth, now // RTB_SECONDS * RTB_SECONDS))

    def tick_by_tick(self, req: ReqTickByTick) -> None:
        r = self._resolve(req.req_id, req.contract, False, allow_contfut=False)
        if r is None:
            return
        tick_type = TICK_TYPES.get(req.tick_type.strip())
        if tick_type is None:
            self.s.error(req.req_id, 321, f"Error validating request:-'tickType {req.tick_type!r} is invalid "
                         f"(accepted: {', '.join(TICK_TYPES)})'")  # fmt: skip
            return
        full = self.streams.full("tickByTick")
        if full:
            self.s.error(req.req_id, *full)
            return
        now = self.core.clock.now()
        t = TickStream(req.req_id, r, tick_type, int(now.timestamp()))
        if req.number_of_ticks > 0:  # the last N prints first, then the stream
            back = int((now - dt.timedelta(days=4)).timestamp())
            for row in self.streams.tick_rows(t, back, now)[-min(req.number_of_ticks, 1000):]:
                self.streams.send_tick(t, row)
        self.streams.add("tickByTick", req.req_id, t)

    def cancel(self, req: Cancel) -> None:
        """Cancels of streams end them; the others (scanner, fundamentals, WSH...) have nothing to stop."""
        self.streams.cancel(req.kind, req.req_id)

    # ----- reference data -----------------------------------------------------------------
    def matching_symbols(self, req: ReqMatchingSymbols) -> None:
        u = self.core.feed.u
        cont = getattr(u, "continuous_con_id", None)
        ids = {s.symbol: cont(s.symbol) for s in u.specs()} if cont else {}
        rows = matching_symbols(u.specs(), req.pattern, ids)
        self.s.send(M.symbol_samples(req.req_id, rows, self.s.version))

    def market_rule(self, req: ReqMarketRule) -> None:
        rules = market_rules(self.core.feed.u.specs())
        if req.market_rule_id not in rules:
            self.s.error(-1, 321, f"Error validating request:-'market rule id {req.market_rule_id} is not defined "
                         f"(the listed products use {', '.join(map(str, sorted(rules)))})'")  # fmt: skip
            return
        self.s.send(M.market_rule(req.market_rule_id, rules[req.market_rule_id]))

    def sec_def_opt_params(self, req: ReqSecDefOptParams) -> None:
        """No options are listed on futures here: the answer is empty but terminated."""
        self.s.send(M.sec_def_opt_params_end(req.req_id))

    def positions_multi(self, req: ReqPositionsMulti) -> None:
        accts = self.core.accounts if req.account in ("", "All") else [req.account]
        if any(a not in self.core.account_book for a in accts):
            self.s.error(req.req_id, 321, f"Error validating request:-'account {req.account!r} is not managed'")
            return
        for acct in accts:
            for p in self.core.account_book.get(acct).open_positions():
                c = self.core.wire(p.con_id)
                if c is not None:
                    self.s.send(M.position_multi(req.req_id, acct, c, p.qty, round(p.avg_cost, 6), req.model_code))
        self.s.send(M.position_multi_end(req.req_id))

    def set_server_log_level(self, req: SetServerLogLevel) -> None:
        if not 1 <= req.level <= 5:
            self.s.error(-1, 319, f"Invalid log level {req.level} (accepted 1 to 5)")

    def other(self, req: OtherRequest) -> None:
        """Requests the exchange holds no data for: IB's empty answer, its error, or nothing."""
        policy = POLICIES.get(req.msg_id)
        if policy is None:
            self.s.error(req.req_id if req.req_id is not None else -1, 321,
                         f"Error validating request:-'{req.name} is not served by the embedded exchange'")  # fmt: skip
            return
        if policy.kind == "error":
            self.s.error(req.req_id if req.req_id is not None else -1, policy.code, policy.text)
            return
        if policy.kind == "silent":
            return
        rid = req.req_id if req.req_id is not None else -1
        accts = self.core.accounts
        replies: dict[int, Callable[[], M.Fields]] = {
            24: lambda: M.scanner_parameters(SCANNER_PARAMETERS_XML),
            65: lambda: M.verify_completed(False, "API verification is not used by this exchange"),
            66: lambda: M.verify_completed(False, "API verification is not used by this exchange"),
            67: lambda: M.display_group_list(rid, ""),
            72: lambda: M.verify_and_auth_completed(False, "API verification is not used by this exchange"),
            73: lambda: M.verify_and_auth_completed(False, "API verification is not used by this exchange"),
            79: lambda: M.soft_dollar_tiers(rid),
            80: lambda: M.family_codes([(a, "") for a in accts]),
            82: lambda: M.mkt_depth_exchanges(depth_exchanges(self.core.feed.u.specs())),
            83: lambda: M.smart_components(rid),
            85: lambda: M.news_providers(),
            86: lambda: M.historical_news_end(rid),
            104: lambda: M.user_info(rid),
        }
        self.s.send(replies[req.msg_id]())


HANDLERS: dict[type, str] = {
    ReqHistoricalData: "historical", CancelHistoricalData: "cancel_historical", ReqHeadTimeStamp: "head_time_stamp", ReqHistogramData: "histogram",
    ReqHistoricalTicks: "historical_ticks", ReqMktDepth: "mkt_depth", ReqRealTimeBars: "real_time_bars",
    ReqTickByTick: "tick_by_tick", Cancel: "cancel", ReqMatchingSymbols: "matching_symbols",
    ReqMarketRule: "market_rule", ReqSecDefOptParams: "sec_def_opt_params", ReqPositionsMulti: "positions_multi",
    SetServerLogLevel: "set_server_log_level", OtherRequest: "other",
}  # fmt: skip
