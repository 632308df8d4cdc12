"""Term structure: how each contract month is priced from the spot series.

    F(t, T) = S(t) * exp(carry(t) * tau(t, T)),   tau = (last trade date of T - t) / 365 days

``carry`` is a slowly mean-reverting slope per product (log price per year): positive is
contango (deferred months dearer, rolling a long costs money), negative is backwardation. It
wanders between the two over months, so roll costs change sign over the years.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from hydra_engine.sim.catalog import MarketProfile, Product, listing_date
from hydra_engine.sim.history import LaidHistory
from hydra_engine.sim.market_types import DailyBar, FutureMonth
from hydra_engine.sim.scenarios import _VOLUME_NOISE_SD, ScenarioInfo, generate, stream_seed

_HALF_LIFE_DAYS = 120.0


def carry_series(profile: MarketProfile, n_days: int, seed: int, symbol: str) -> np.ndarray:
    """Daily carry slope (per year) as an Ornstein-Uhlenbeck path around the profile's mean."""
    rng = np.random.default_rng(stream_seed(seed, symbol, "carry"))
    kappa = math.log(2.0) / _HALF_LIFE_DAYS
    step_sd = profile.carry_sd_per_year * math.sqrt(1.0 - math.exp(-2.0 * kappa))
    e = rng.standard_normal(n_days)
    out = np.empty(n_days, dtype=np.float64)
    x = profile.carry_mean_per_year + profile.carry_sd_per_year * e[0]
    decay = math.exp(-kappa)
    for i in range(n_days):
        if i:
            x = profile.carry_mean_per_year + (x - profile.carry_mean_per_year) * decay + step_sd * e[i]
        out[i] = x
    return out


def month_factor(carry: np.ndarray, day_ordinals: np.ndarray, last_trade: dt.date) -> np.ndarray:
    """exp(carry * tau) for each day; tau is floored at zero after the last trade date."""
    tau = np.maximum(last_trade.toordinal() - day_ordinals, 0).astype(np.float64) / 365.0
    return np.exp(carry * tau)


def round_to_tick(values: np.ndarray | float, tick: float) -> np.ndarray | float:
    """Nearest multiple of ``tick`` (kept as clean decimals: 0.1+0.2 style noise removed)."""
    decimals = max(0, -int(math.floor(math.log10(tick))) + 2)
    return np.round(np.round(np.asarray(values) / tick) * tick, decimals)


def tick_round(value: float, tick: float, mode: str = "nearest") -> float:
    """One price on the tick grid: ``nearest``, ``up`` or ``down``."""
    q = value / tick
    if mode == "up":
        n = math.ceil(q - 1e-9)
    elif mode == "down":
        n = math.floor(q + 1e-9)
    else:
        n = round(q)
    decimals = max(0, -int(math.floor(math.log10(tick))) + 2)
    return round(n * tick, decimals)


# ----- spot series and month series --------------------------------------------------------------

_EWMA_LAMBDA = 0.94
_ROLL_WINDOW_DAYS = 10.0
_FRONT_SHARE = 0.62
_NEXT_DECAY = 0.38
_ADV_WINDOW = 20


@dataclass(eq=False, slots=True)
class MarketSeries:
    """One product's spot series on the simulated trading days (all numpy arrays, same length)."""

    product: Product
    scenario: ScenarioInfo
    days: np.ndarray
    """``datetime64[D]`` trading days."""
    ords: np.ndarray
    """int64 proleptic ordinals of ``days``."""
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    """float64 contracts/day across all months."""
    spread_ticks: np.ndarray
    """float32 front-month spread, ticks."""
    sigma: np.ndarray
    """float64 daily log-return volatility known before each day (EWMA)."""
    carry: np.ndarray
    """float64 term-structure slope per year."""
    months: list[FutureMonth]
    month_index: dict[int, int]
    ltd_ords: np.ndarray
    """int64 last-trade-date ordinals of ``months``."""


def _ewma_sigma(log_ret: np.ndarray, initial: float) -> np.ndarray:
    out = np.empty(len(log_ret) + 1)
    var = initial * initial
    out[0] = initial
    for i, r in enumerate(log_ret):
        var = _EWMA_LAMBDA * var + (1.0 - _EWMA_LAMBDA) * r * r
        out[i + 1] = math.sqrt(var)
    return np.maximum(out, 0.25 * initial)


def build_market_series(product: Product, info: ScenarioInfo, days: np.ndarray, laid: LaidHistory | None,
                        months: list[FutureMonth], seed: int) -> MarketSeries:
    """Spot OHLC, volume, spread, volatility and carry for one product on ``days``."""
    p = product.profile
    sym = product.spec.symbol
    n = len(days)
    if laid is None:
        gen = generate(info, p, [d for d in days.astype(dt.date)])
        close, vf, sf = gen.close, gen.volume_factor, gen.spread_factor
    else:
        close = laid.close
        vf = np.ones(n)
        sf = np.ones(n)
    log_ret = np.diff(np.log(close))
    sigma = _ewma_sigma(log_ret, p.daily_vol)[:n]
    shocks = np.concatenate([[0.8], np.abs(log_ret) / sigma[1:]])
    rng = np.random.default_rng(stream_seed(seed, sym, "ohlc"))
    gap = rng.normal(0.0, 0.2, n) * sigma
    up = np.abs(rng.normal(0.0, 0.6, n)) * sigma + 0.05 * sigma
    dn = np.abs(rng.normal(0.0, 0.6, n)) * sigma + 0.05 * sigma
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(gap)
    high = np.maximum(open_, close) * np.exp(up)
    low = np.minimum(open_, close) * np.exp(-dn)
    vol = p.adv_contracts * vf * rng.lognormal(-0.06, _VOLUME_NOISE_SD, n) * (0.7 + 0.4 * np.minimum(shocks, 4.0))
    spread = np.maximum(1.0, p.spread_ticks * sf * rng.lognormal(0.0, 0.15, n))
    if laid is not None:
        have = ~np.isnan(laid.open_ratio)
        open_[have] = close[have] * laid.open_ratio[have]
        high[have] = np.maximum(close[have] * laid.high_ratio[have], np.maximum(open_[have], close[have]))
        low[have] = np.minimum(close[have] * laid.low_ratio[have], np.minimum(open_[have], close[have]))
        have_v = ~np.isnan(laid.volume)
        vol[have_v] = laid.volume[have_v]
    carry = carry_series(p, n, seed, sym)
    return MarketSeries(
        product=product, scenario=info, days=days, ords=days.astype(np.int64) + _EPOCH_ORDINAL,
        open=open_, high=high, low=low, close=close, volume=vol,
        spread_ticks=spread.astype(np.float32), sigma=sigma, carry=carry, months=months,
        month_index={fm.con_id: i for i, fm in enumerate(months)},
        ltd_ords=np.asarray([fm.last_trade_date.toordinal() for fm in months], dtype=np.int64),
    )


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(eq=False, slots=True)
class MonthSeries:
    """Daily bars of one contract month over its listed life within the simulated range."""

    con_id: int
    symbol: str
    tick: float
    last_day: dt.date
    dates: np.ndarray
    ords: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    spread_ticks: np.ndarray
    sigma: np.ndarray
    adv: np.ndarray
    """Average daily volume of the previous 20 sessions (contracts, at least 1)."""

    def index_of(self, day: dt.date) -> int:
        """Position of trade date ``day``, or -1 if the month has no bar that day."""
        o = day.toordinal()
        i = int(np.searchsorted(self.ords, o))
        return i if i < len(self.ords) and self.ords[i] == o else -1

    def index_on_or_before(self, day: dt.date) -> int:
        return int(np.searchsorted(self.ords, day.toordinal(), side="right")) - 1

    def bars(self, lo: int, hi: int) -> list[DailyBar]:
        """Bars ``lo..hi-1`` (unadjusted), built in bulk."""
        sl = slice(lo, hi)
        wap = round_to_tick((self.high[sl] + self.low[sl] + 2 * self.close[sl]) / 4.0, self.tick)
        rows = zip(self.dates[sl].astype(object).tolist(), self.open[sl].tolist(), self.high[sl].tolist(),
                   self.low[sl].tolist(), self.close[sl].tolist(), self.volume[sl].tolist(), wap.tolist())
        return [DailyBar(date=d, open=o, high=h, low=l, close=c, volume=v, wap=w,
                         bar_count=max(1, v // 3) if v else 0) for d, o, h, l, c, v, w in rows]

    def bar(self, i: int, factor: float = 1.0, tick: float | None = None) -> DailyBar:
        o, h, l, c = (float(a[i]) for a in (self.open, self.high, self.low, self.close))
        if factor != 1.0:
            t = tick or self.tick
            o, h, l, c = (tick_round(x * factor, t) for x in (o, h, l, c))
        v = int(self.volume[i])
        wap = tick_round((h + l + 2 * c) / 4.0, tick or self.tick)
        return DailyBar(date=self.dates[i].astype(dt.date), open=o, high=h, low=l, close=c, volume=v,
                        wap=wap, bar_count=max(1, v // 3) if v else 0)


def volume_share(rank: np.ndarray, front_days_left: np.ndarray) -> np.ndarray:
    """Share of a product's volume a month gets by its rank (0 = front), migrating at the roll."""
    roll = np.clip(front_days_left / _ROLL_WINDOW_DAYS, 0.1, 1.0)
    share = _FRONT_SHARE * _NEXT_DECAY ** rank.astype(np.float64)
    front = rank == 0
    second = rank == 1
    share = np.where(front, _FRONT_SHARE * roll, share)
    share = np.where(second, share + _FRONT_SHARE * (1.0 - roll), share)
    return share


def build_month_series(mkt: MarketSeries, fm: FutureMonth, seed: int) -> MonthSeries:
    """Price one month from the spot series: spot x exp(carry x tau), rounded to the tick."""
    j = mkt.month_index[fm.con_id]
    listed = listing_date(mkt.product, mkt.months, j)
    a = int(np.searchsorted(mkt.ords, max(listed, dt.date.min).toordinal(), side="left"))
    b = int(np.searchsorted(mkt.ords, fm.last_trade_date.toordinal(), side="right"))
    tick = mkt.product.spec.min_tick
    sl = slice(a, b)
    ords = mkt.ords[sl]
    factor = month_factor(mkt.carry[sl], ords, fm.last_trade_date)
    o, h, l, c = (round_to_tick(x[sl] * factor, tick) for x in (mkt.open, mkt.high, mkt.low, mkt.close))
    first_live = np.searchsorted(mkt.ltd_ords, ords, side="left")
    rank = j - first_live
    front_ltd = mkt.ltd_ords[np.minimum(first_live, len(mkt.ltd_ords) - 1)]
    share = volume_share(rank, (front_ltd - ords).astype(np.float64))
    rng = np.random.default_rng(stream_seed(seed, "month-volume", str(fm.con_id)))
    vol = np.round(mkt.volume[sl] * share * rng.lognormal(-0.03, 0.25, len(ords))).astype(np.int64)
    spread = np.maximum(1, np.round(mkt.spread_ticks[sl] * (1.0 + 0.5 * rank))).astype(np.int32)
    csum = np.concatenate([[0], np.cumsum(vol)])
    idx = np.arange(len(vol))
    lo = np.maximum(idx - _ADV_WINDOW, 0)
    n_prev = idx - lo
    expected = mkt.volume[sl] * share
    adv = np.where(n_prev > 0, (csum[idx] - csum[lo]) / np.maximum(n_prev, 1), expected)
    adv = np.maximum(adv, 1.0)
    return MonthSeries(
        con_id=fm.con_id, symbol=fm.symbol, tick=tick, last_day=fm.last_trade_date,
        dates=mkt.days[sl], ords=ords, open=o, high=h, low=l, close=c, volume=vol,
        spread_ticks=spread, sigma=mkt.sigma[sl], adv=adv,
    )
