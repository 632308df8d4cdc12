"""``SimMarketUniverse``: the market side of the embedded exchange, behind ``MarketUniverse``.

Each product has one spot series on the simulated trading calendar (real WTI closes for CL,
a user's CSV, or a seeded scenario), stored as numpy arrays. Contract months are derived on
demand: spot x term-structure factor, rounded to the tick, with their own volume share; intraday
paths and fills are generated lazily from (seed, conId, trade date). See MARKETS.md.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import structlog

from hydra_engine.sim import calendar as cal
from hydra_engine.sim.catalog import (
    DEFAULT_PRODUCTS, Product, check_unique_prefixes, continuous_con_id, decode_con_id,
    generic_product, listing_date, months_around, product_prefix,
)
from hydra_engine.sim.fill_model import DayContext, HiddenFillParams, hidden_params, match_order, touch_prices
from hydra_engine.sim.history import PriceHistory, lay_onto, load_history_csv, load_wti
from hydra_engine.sim.market_types import ContractSpec, DailyBar, FutureMonth, Quote, Side, SimFill
from hydra_engine.sim.intraday_paths import IntradayPath, PathCache, build_path
from hydra_engine.sim.scenarios import (
    ScenarioChoice, ScenarioInfo, feature_and_target, history_scenario, resolve_scenario, stream_seed,
)
from hydra_engine.sim.term_structure import (
    MarketSeries, MonthSeries, build_market_series, build_month_series, round_to_tick, tick_round,
)

log = structlog.get_logger(__name__)

DEFAULT_SYMBOLS = ("CL", "ZO", "ZR", "LBR")
DEFAULT_START = dt.date(2015, 1, 1)
DEFAULT_END = dt.date(2027, 12, 31)
_HISTORY_BEFORE_CLOCK_YEARS = 3
_MAX_MATCH_SESSIONS = 40
_MONTH_CACHE = 192
_EXPIRED_LOOKBACK_DAYS = 2 * 365


def default_range(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """Default simulated date range: 2015-01-01 to the end of next year (at least 2027-12-31)."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return DEFAULT_START, max(DEFAULT_END, dt.date(today.year + 1, 12, 31))


class SimMarketUniverse:
    """Implements ``market_types.MarketUniverse``; build it with ``build_universe``."""

    def __init__(self, seed: int, start: dt.date, end: dt.date, markets: Mapping[str, MarketSeries],
                 clock_start: dt.datetime) -> None:
        self.seed = seed
        self.start = start
        self.end = end
        self._markets = dict(markets)
        self._clock_start = clock_start
        self._by_prefix = {product_prefix(s): s for s in self._markets}
        self._fill_params = {s: hidden_params(seed, s) for s in self._markets}
        self._month_cache: OrderedDict[int, MonthSeries] = OrderedDict()
        self._paths = PathCache(32)
        self._cache_lock = threading.Lock()  # caches may be filled from a worker thread too
        self._clock: Any = None

    # ----- catalog ------------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return list(self._markets)

    def specs(self) -> Sequence[ContractSpec]:
        return [m.product.spec for m in self._markets.values()]

    def spec(self, symbol: str) -> ContractSpec | None:
        m = self._markets.get(symbol.upper())
        return m.product.spec if m else None

    def product(self, symbol: str) -> Product:
        return self._market(symbol).product

    def series(self, symbol: str) -> MarketSeries:
        """The spot series of ``symbol`` (days, closes, scenario), for measurements outside the class."""
        return self._market(symbol)

    def scenario(self, symbol: str) -> ScenarioInfo:
        """Ground truth of ``symbol``'s market (for tests and the agent's evaluation only)."""
        return self._market(symbol).scenario

    def default_clock_start(self) -> dt.datetime:
        """Suggested lock-step start: 3 years of history before it, over a year after it."""
        return self._clock_start

    def bind_clock(self, clock: Any) -> None:
        """Give the universe the exchange clock, so ``daily_bars`` never returns an unfinished session."""
        self._clock = clock

    def months(self, symbol: str, as_of: dt.date, include_expired: bool = False) -> Sequence[FutureMonth]:
        """Listed months on ``as_of``, front first; then, with ``include_expired``, the expired
        months of the last two years (most recent first) whose history the universe holds."""
        mkt = self._markets.get(symbol.upper())
        if mkt is None:
            return []
        listed = [fm for i, fm in enumerate(mkt.months)
                  if listing_date(mkt.product, mkt.months, i) <= as_of <= fm.last_trade_date]
        if not include_expired:
            return listed
        oldest = max(self.start, as_of - dt.timedelta(days=_EXPIRED_LOOKBACK_DAYS))
        expired = [fm for fm in mkt.months if oldest <= fm.last_trade_date < as_of]
        return listed + expired[::-1]

    def front_month(self, symbol: str, as_of: dt.date) -> FutureMonth:
        """The nearest listed month on ``as_of``."""
        listed = self.months(symbol, as_of)
        if not listed:
            raise ValueError(f"no listed month for {symbol} on {as_of}")
        return listed[0]

    def month(self, con_id: int) -> FutureMonth | None:
        decoded = decode_con_id(con_id)
        if decoded is None:
            return None
        sym = self._by_prefix.get(decoded[0])
        if sym is None:
            return None
        mkt = self._markets[sym]
        i = mkt.month_index.get(con_id)
        return mkt.months[i] if i is not None else None

    def continuous_con_id(self, symbol: str) -> int:
        """conId the wire side may give the CONTFUT of ``symbol`` (history only)."""
        self._market(symbol)
        return continuous_con_id(symbol.upper())

    def continuous_symbol(self, con_id: int) -> str | None:
        """Symbol whose CONTFUT has ``con_id``, else None."""
        if decode_con_id(con_id) is not None:
            return None
        return self._by_prefix.get(con_id // 100_000)

    # ----- calendar -----------------------------------------------------------------------------
    def is_trading_day(self, symbol: str, day: dt.date) -> bool:
        self._market(symbol)
        return cal.is_business_day(day)

    def session_bounds(self, symbol: str, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """UTC open/close of the session closing on ``day``; ValueError if ``day`` has none."""
        if not cal.is_business_day(day):
            raise ValueError(f"{symbol} has no session on {day} ({day:%A}, or an exchange holiday)")
        return cal.session_bounds(self._market(symbol).product.spec.hours, day)

    def trade_date(self, symbol: str, at: dt.datetime) -> dt.date:
        return cal.trade_date(self._market(symbol).product.spec.hours, at)

    def trading_hours(self, symbol: str, as_of: dt.date, liquid: bool = False) -> str:
        """IB ``tradingHours`` (or ``liquidHours``) text for the week from ``as_of``."""
        return cal.ib_hours(self._market(symbol).product.spec.hours, as_of, 7, liquid)

    # ----- history ------------------------------------------------------------------------------
    def daily_bars(self, con_id: int, end: dt.date, count: int) -> Sequence[DailyBar]:
        """Completed bars of one month (or a CONTFUT conId) ending at ``end``, oldest first."""
        sym = self.continuous_symbol(con_id)
        if sym is not None:
            return self.continuous_bars(sym, end, count)
        ms = self._month_series(con_id)
        if ms is None or count <= 0:
            return []
        end = self._cap_end(ms.symbol, end)
        hi = ms.index_on_or_before(end) + 1
        lo = max(0, hi - count)
        return ms.bars(lo, hi)

    def continuous_bars(self, symbol: str, end: dt.date, count: int) -> Sequence[DailyBar]:
        """Front-month bars, ratio back-adjusted across rolls so returns carry no roll gaps.

        The front month rolls the day after its last trade date. Prices before a roll are
        multiplied by (next month close / old month close) on the last day before the roll, so
        the newest bar is unadjusted.
        """
        mkt = self._market(symbol)
        if count <= 0:
            return []
        end = self._cap_end(mkt.product.spec.symbol, end)
        hi = int(np.searchsorted(mkt.ords, end.toordinal(), side="right"))
        lo = max(0, hi - count)
        if hi <= lo:
            return []
        ords = mkt.ords[lo:hi]
        front = np.searchsorted(mkt.ltd_ords, ords, side="left")
        n = hi - lo
        cols = {k: np.full(n, np.nan) for k in ("open", "high", "low", "close", "volume")}
        next_close = np.full(n, np.nan)  # close of the next front on the last day before a roll
        roll_at = np.flatnonzero(front[:-1] != front[1:])
        for j in np.unique(front):
            ms = self._month_series(mkt.months[int(j)].con_id)
            assert ms is not None
            sel = np.flatnonzero(front == j)
            pos = np.searchsorted(ms.ords, ords[sel])
            ok = (pos < len(ms.ords)) & (ms.ords[np.minimum(pos, len(ms.ords) - 1)] == ords[sel])
            for k, arr in cols.items():
                arr[sel[ok]] = getattr(ms, k)[pos[ok]]
            mine = roll_at[front[roll_at + 1] == j]  # rolls into month j
            if len(mine):
                p2 = np.searchsorted(ms.ords, ords[mine])
                good = (p2 < len(ms.ords)) & (ms.ords[np.minimum(p2, len(ms.ords) - 1)] == ords[mine])
                next_close[mine[good]] = ms.close[p2[good]]
        ratio = np.ones(n)
        valid = ~np.isnan(next_close) & ~np.isnan(cols["close"])
        ratio[valid] = next_close[valid] / cols["close"][valid]
        # Factor for day k: product of the roll ratios at k and after.
        factor = np.cumprod(ratio[::-1])[::-1]
        tick = mkt.product.spec.min_tick
        o, h, l, c = (round_to_tick(cols[k] * factor, tick) for k in ("open", "high", "low", "close"))
        wap = round_to_tick((h + l + 2 * c) / 4.0, tick)
        idx = np.flatnonzero(~np.isnan(cols["close"]))
        vol = np.nan_to_num(cols["volume"]).astype(np.int64)[idx].tolist()
        rows = zip(mkt.days[lo:hi][idx].astype(object).tolist(), o[idx].tolist(), h[idx].tolist(),
                   l[idx].tolist(), c[idx].tolist(), vol, wap[idx].tolist())
        return [DailyBar(date=d, open=oo, high=hh, low=ll, close=cc, volume=v, wap=w,
                         bar_count=max(1, v // 3) if v else 0) for d, oo, hh, ll, cc, v, w in rows]

    def _cap_end(self, symbol: str, end: dt.date) -> dt.date:
        if self._clock is None:
            return end
        done = cal.last_completed_session(self._market(symbol).product.spec.hours, self._clock.now())
        return min(end, done)

    # ----- quotes and fills -------------------------------------------------------------------------
    def quote(self, con_id: int, at: dt.datetime) -> Quote:
        """Inside a session: the path at ``at``; outside (and in the half minute before a
        session's first print): the last completed session, its close as ``last``."""
        ms = self._require_month(con_id)
        if len(ms.dates) == 0:
            raise ValueError(f"conId {con_id} trades outside the simulated range {self.start}..{self.end}")
        hours = self._markets[ms.symbol].product.spec.hours
        day = cal.trade_date(hours, at)
        i = ms.index_of(day)
        if i >= 0:
            opened, closed = cal.session_bounds(hours, day)
            path = self._path(ms, i) if opened <= at < closed else None
            s = path.last_step_at_or_before(at) if path is not None else -1
            if path is not None and s >= 0:
                bid, ask = touch_prices(float(path.price[s]), self._day_context(ms, i, path))
                bid_size, ask_size, last_size = self._sizes(ms, day, s)
                seg = path.price[: s + 1]
                return Quote(bid=bid, ask=ask, last=float(path.price[s]), bid_size=bid_size,
                             ask_size=ask_size, last_size=last_size, volume=int(path.cum_volume[s]),
                             open=float(path.price[0]), high=float(seg.max()), low=float(seg.min()),
                             close=float(ms.close[i - 1]) if i > 0 else float(ms.open[i]))
        j = ms.index_on_or_before(cal.last_completed_session(hours, at))
        if j < 0:
            j = 0
        bar = ms.bar(j)
        ctx_spread = int(ms.spread_ticks[j])
        tick = ms.tick
        half = ctx_spread * tick / 2
        bid = tick_round(bar.close - half, tick, "down")
        ask = tick_round(bid + ctx_spread * tick, tick)
        bid_size, ask_size, _ = self._sizes(ms, bar.date, -1)
        return Quote(bid=bid, ask=ask, last=bar.close, bid_size=bid_size, ask_size=ask_size,
                     last_size=0, volume=bar.volume, open=bar.open, high=bar.high, low=bar.low,
                     close=float(ms.close[j - 1]) if j > 0 else bar.open)

    def match(self, con_id: int, side: Side, qty: int, limit: float | None,
              start: dt.datetime, end: dt.datetime) -> Sequence[SimFill]:
        """Fills over ``(start, end]`` from path prices after ``start`` (see fill_model)."""
        ms = self._require_month(con_id)
        if end <= start:
            return []
        hours = self._markets[ms.symbol].product.spec.hours
        first = cal.trade_date(hours, start)
        last = min(cal.trade_date(hours, end), ms.last_day)
        days: list[dt.date] = []
        day = first
        while day <= last and len(days) < _MAX_MATCH_SESSIONS:
            days.append(day)
            day = cal.next_business_day(day)

        def session(d: dt.date) -> DayContext | None:
            i = ms.index_of(d)
            if i < 0:
                return None
            path = self._path(ms, i)
            return self._day_context(ms, i, path)

        fills = match_order(self._fill_params[ms.symbol], con_id, side, qty, limit,
                            start, end, [lambda d=d: session(d) for d in days])
        if fills:
            log.debug("sim_match", con_id=con_id, side=side, qty=qty, limit=limit,
                      filled=sum(f.qty for f in fills), n_fills=len(fills))
        return fills

    def intraday_path(self, con_id: int, day: dt.date) -> IntradayPath:
        """The minute path of one month's session (for tests, charts and the wire side's ticks)."""
        ms = self._require_month(con_id)
        i = ms.index_of(day)
        if i < 0:
            raise ValueError(f"conId {con_id} has no session on {day}")
        return self._path(ms, i)

    def hidden_fill_params(self, symbol: str) -> HiddenFillParams:
        """The exchange's private fill parameters (tests only; never give these to the engine)."""
        return self._fill_params[self._market(symbol).product.spec.symbol]

    # ----- internals ------------------------------------------------------------------------------
    def _market(self, symbol: str) -> MarketSeries:
        mkt = self._markets.get(symbol.upper())
        if mkt is None:
            raise KeyError(f"unknown symbol {symbol!r}; this universe has {', '.join(self._markets)}")
        return mkt

    def _require_month(self, con_id: int) -> MonthSeries:
        ms = self._month_series(con_id)
        if ms is None:
            raise KeyError(f"unknown contract month conId {con_id}")
        return ms

    def _month_series(self, con_id: int) -> MonthSeries | None:
        with self._cache_lock:
            ms = self._month_cache.get(con_id)
            if ms is not None:
                self._month_cache.move_to_end(con_id)
                return ms
        fm = self.month(con_id)
        if fm is None:
            return None
        ms = build_month_series(self._markets[fm.symbol], fm, self.seed)
        with self._cache_lock:
            self._month_cache[con_id] = ms
            while len(self._month_cache) > _MONTH_CACHE:
                self._month_cache.popitem(last=False)
        return ms

    def _path(self, ms: MonthSeries, i: int) -> IntradayPath:
        day = ms.dates[i].astype(dt.date)
        with self._cache_lock:
            cached = self._paths.get((ms.con_id, day))
        if cached is not None:
            return cached
        hours = self._markets[ms.symbol].product.spec.hours
        path = build_path(self.seed, ms.con_id, day, cal.session_bounds(hours, day),
                          cal.liquid_bounds(hours, day),
                          (float(ms.open[i]), float(ms.high[i]), float(ms.low[i]), float(ms.close[i])),
                          int(ms.volume[i]), ms.tick)
        with self._cache_lock:
            self._paths.put(path)
        return path

    def _day_context(self, ms: MonthSeries, i: int, path: IntradayPath) -> DayContext:
        ref = float(ms.close[i - 1]) if i > 0 else float(ms.open[i])
        return DayContext(path=path, spread_ticks=int(ms.spread_ticks[i]),
                          sigma_price=float(ms.sigma[i]) * ref, adv=float(ms.adv[i]), tick=ms.tick)

    def _sizes(self, ms: MonthSeries, day: dt.date, step: int) -> tuple[int, int, int]:
        rng = np.random.default_rng(stream_seed(self.seed, "sizes", str(ms.con_id), day.isoformat(), str(step)))
        base = max(1.0, float(ms.adv[ms.index_on_or_before(day)]) * 0.003)
        b, a, lst = (max(1, int(round(base * x))) for x in rng.lognormal(0.0, 0.5, 3))
        return b, a, lst


# ----- building ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Source:
    kind: str  # "wti", "csv" or "synthetic"
    history: PriceHistory | None


def _default_clock_start(start: dt.date, end: dt.date) -> dt.datetime:
    day = dt.date(start.year + _HISTORY_BEFORE_CLOCK_YEARS, start.month, min(start.day, 28))
    if day > end - dt.timedelta(days=366):
        day = start + (end - start) / 2
    while not cal.is_business_day(day):
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(12, 0), tzinfo=dt.timezone.utc)


def build_universe(
    seed: int = 7,
    symbols: Sequence[str] | None = None,
    csv_paths: Mapping[str, Path | str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    scenarios: Mapping[str, str | ScenarioChoice] | None = None,
) -> SimMarketUniverse:
    """Build a deterministic universe.

    ``symbols``: catalog products to include (default CL, ZO, ZR, LBR); every ``csv_paths`` symbol
    is added. ``csv_paths`` prices a symbol from a user CSV (a catalog product keeps its spec,
    any other symbol gets a generic CME-like one). ``scenarios`` picks a registered scenario (or a
    ``ScenarioChoice``) per synthetic symbol; naming one for CL prices CL synthetically too.
    ``start``/``end`` bound the simulated calendar (default 2015-01-01 to the end of next year).
    """
    d_start, d_end = default_range()
    start = start or d_start
    end = end or d_end
    if end <= start + dt.timedelta(days=60):
        raise ValueError(f"end {end} must be more than 60 days after start {start}")
    csv_paths = {k.upper(): Path(v) for k, v in (csv_paths or {}).items()}
    scenarios = {k.upper(): v for k, v in (scenarios or {}).items()}
    wanted = [s.upper() for s in (symbols if symbols is not None else DEFAULT_SYMBOLS)]
    for s in csv_paths:
        if s not in wanted:
            wanted.append(s)
    for s in scenarios:
        if s not in wanted:
            raise ValueError(f"scenario given for {s!r}, which is not among the symbols {wanted}")
        if s in csv_paths:
            raise ValueError(f"{s} is priced from a CSV file; it cannot also have a scenario")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"duplicate symbols in {wanted}")
    check_unique_prefixes(wanted)
    clock_start = _default_clock_start(start, end)
    days = np.asarray(cal.business_days(start, end), dtype="datetime64[D]")
    markets: dict[str, MarketSeries] = {}
    wti: PriceHistory | None = None
    for sym in wanted:
        if sym in csv_paths:
            hist = load_history_csv(csv_paths[sym])
            product = DEFAULT_PRODUCTS.get(sym) or generic_product(sym, float(hist.close[-1]))
            info = history_scenario(sym, "user_csv", f"User history from {csv_paths[sym]}",
                                    product.profile, seed)
            source = _Source("csv", hist)
        elif sym in DEFAULT_PRODUCTS:
            product = DEFAULT_PRODUCTS[sym]
            choice = scenarios.get(sym, product.profile.default_scenario)
            if choice == "wti_history":
                wti = wti or load_wti()
                info = history_scenario(sym, "wti_history", "Real WTI daily closes (FRED DCOILWTICO)",
                                        product.profile, seed)
                source = _Source("wti", wti)
            else:
                info = resolve_scenario(sym, choice, product.profile, seed, clock_start.date())
                late = [d for d in info.change_dates if d > end]
                if late:
                    log.warning("sim_scenario_change_after_range", symbol=sym, scenario=info.name,
                                change_dates=[str(d) for d in late], end=str(end))
                source = _Source("synthetic", None)
        else:
            raise ValueError(f"unknown symbol {sym!r}: known products are {', '.join(DEFAULT_PRODUCTS)}; "
                             "other symbols need a CSV in csv_paths")
        laid = lay_onto(source.history, days) if source.history is not None else None
        first_year, last_year = start.year - 2, end.year + 3
        months = months_around(product, first_year, last_year)
        markets[sym] = build_market_series(product, info, days, laid, months, seed)
        if laid is not None:
            log.info("sim_history_laid", symbol=sym, source=source.kind, shift_years=laid.shift_years,
                     repeats=laid.repeats, days=len(days))
    log.info("sim_universe_built", seed=seed, symbols=wanted, start=str(start), end=str(end),
             clock_start=clock_start.isoformat())
    return SimMarketUniverse(seed, start, end, markets, clock_start)


def measure_coefficient(universe: SimMarketUniverse, symbol: str, first: dt.date, last: dt.date) -> float:
    """OLS slope of next-day spot log return on the scenario feature over ``[first, last]``."""
    mkt = universe.series(symbol)
    sel = (mkt.days >= np.datetime64(first)) & (mkt.days <= np.datetime64(last))
    r = np.diff(np.log(mkt.close[sel]))
    f, y = feature_and_target(r, mkt.scenario.lookback_days)
    f = f - f.mean()
    return float((f * (y - y.mean())).sum() / (f * f).sum()) if len(f) > 2 else math.nan
