"""Product catalog: one ``ContractSpec`` per futures root, its listing cycle and stable conIds.

Every product also carries a ``MarketProfile``: the simulator's own idea of how the market
behaves (price level, volatility, volume, spread, carry), used to generate synthetic history and
to parameterise the term structure and fill model. Nothing here is a trading fact the engine may
rely on: the engine learns contract facts from contract details, as with a real gateway.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, replace

from hydra_engine.sim.calendar import EXPIRY_RULES, MONTH_CODES, is_business_day
from hydra_engine.sim.market_types import ContractSpec, FutureMonth, SessionHours

_CT = "US/Central"
_ET = "US/Eastern"

_GLOBEX_ENERGY = SessionHours(_CT, dt.time(17, 0), dt.time(16, 0), dt.time(8, 0), dt.time(13, 30))
_CBOT_GRAIN = SessionHours(_CT, dt.time(19, 0), dt.time(13, 20), dt.time(8, 30), dt.time(13, 20))
_CME_LUMBER = SessionHours(_CT, dt.time(9, 0), dt.time(15, 5), dt.time(9, 0), dt.time(15, 5))
_CME_DAIRY = SessionHours(_CT, dt.time(17, 0), dt.time(16, 0), dt.time(9, 0), dt.time(13, 55))
_ICE_SOFTS = SessionHours(_ET, dt.time(8, 0), dt.time(14, 0), dt.time(8, 0), dt.time(14, 0))
_MGEX_WHEAT = SessionHours(_CT, dt.time(19, 0), dt.time(13, 20), dt.time(8, 30), dt.time(13, 20))


@dataclass(frozen=True, slots=True)
class MarketProfile:
    """How the simulator generates one product's market. Prices in quote units per unit."""

    base_price: float
    """Starting price level of synthetic history."""
    daily_vol: float
    """Daily log-return standard deviation (e.g. 0.015 = 1.5 %)."""
    adv_contracts: int
    """Average daily volume across all months, contracts/day."""
    spread_ticks: float
    """Typical front-month bid/ask spread in ticks."""
    carry_mean_per_year: float
    """Long-run mean of the term-structure slope (log-price per year; positive = contango)."""
    carry_sd_per_year: float
    """Stationary standard deviation of the slope (drives contango/backwardation episodes)."""
    default_scenario: str
    """Scenario used when the caller does not name one (``wti_history`` for CL)."""


@dataclass(frozen=True, slots=True)
class Product:
    """A catalog entry: the IB-facing spec plus the simulator's listing rules and profile."""

    spec: ContractSpec
    expiry_rule: str
    """Key into ``calendar.EXPIRY_RULES``."""
    months_listed: int
    """How many not-yet-expired months are listed at any time."""
    profile: MarketProfile


def _spec(symbol: str, exchange: str, mult: float, tick: float, name: str, hours: SessionHours,
          months: str, max_size: int, currency: str = "USD") -> ContractSpec:
    return ContractSpec(
        symbol=symbol, exchange=exchange, currency=currency, multiplier=mult, min_tick=tick,
        long_name=name, trading_class=symbol, hours=hours, listed_months=months,
        max_order_size=max_size,
    )


DEFAULT_PRODUCTS: dict[str, Product] = {
    p.spec.symbol: p
    for p in (
        Product(_spec("CL", "NYMEX", 1000, 0.01, "Light Sweet Crude Oil", _GLOBEX_ENERGY,
                      MONTH_CODES, 500), "nymex_crude", 12,
                MarketProfile(60.0, 0.022, 250_000, 1.0, 0.03, 0.10, "wti_history")),
        Product(_spec("ZO", "CBOT", 50, 0.25, "Oats", _CBOT_GRAIN, "HKNUZ", 100), "bd_before_15", 5,
                MarketProfile(350.0, 0.018, 900, 3.0, 0.08, 0.10, "reversion_to_momentum")),
        Product(_spec("ZR", "CBOT", 2000, 0.005, "Rough Rice", _CBOT_GRAIN, "FHKNUX", 100),
                "bd_before_15", 6, MarketProfile(14.0, 0.012, 1_500, 3.0, 0.04, 0.08,
                                                 "volume_dry_up")),
        Product(_spec("LBR", "CME", 27.5, 0.5, "Lumber", _CME_LUMBER, "FHKNUX", 50), "bd_before_16",
                6, MarketProfile(550.0, 0.021, 600, 4.0, -0.02, 0.12, "vol_doubling")),
        Product(_spec("DC", "CME", 2000, 0.01, "Class III Milk", _CME_DAIRY, MONTH_CODES, 50),
                "last_bd", 12, MarketProfile(17.0, 0.011, 1_800, 3.0, 0.02, 0.15, "drift_shift")),
        Product(_spec("GNF", "CME", 440, 0.025, "Nonfat Dry Milk", _CME_DAIRY, MONTH_CODES, 50),
                "last_bd", 12, MarketProfile(120.0, 0.010, 250, 4.0, 0.01, 0.10,
                                             "mean_reversion_fade")),
        Product(_spec("CSC", "CME", 20000, 0.001, "Cash-Settled Cheese", _CME_DAIRY, MONTH_CODES,
                      50), "last_bd", 12, MarketProfile(1.75, 0.011, 700, 3.0, 0.01, 0.12,
                                                        "momentum_fade")),
        Product(_spec("DY", "CME", 440, 0.025, "Dry Whey", _CME_DAIRY, MONTH_CODES, 50), "last_bd",
                12, MarketProfile(40.0, 0.012, 150, 5.0, 0.0, 0.10, "steady")),
        Product(_spec("OJ", "NYBOT", 150, 0.05, "FCOJ-A", _ICE_SOFTS, "FHKNUX", 50),
                "last_bd", 6, MarketProfile(150.0, 0.020, 1_200, 4.0, 0.01, 0.10, "regime_mix")),
        Product(_spec("MWE", "MGEX", 50, 0.25, "Hard Red Spring Wheat", _MGEX_WHEAT, "HKNUZ",
                      100), "bd_before_15", 5,
                MarketProfile(650.0, 0.016, 3_000, 2.0, 0.05, 0.08, "steady")),
    )
}
"""Products the simulator knows. CL is priced from real WTI history; the rest are synthetic."""


def generic_product(symbol: str, base_price: float) -> Product:
    """Spec for a symbol that only a user CSV defines: CME-like hours, all months, cent ticks."""
    tick = 0.01 if base_price < 1000 else 0.25
    spec = _spec(symbol, "CME", 100, tick, f"{symbol} (user history)", _GLOBEX_ENERGY,
                 MONTH_CODES, 100)
    return Product(spec, "nymex_crude", 12,
                   MarketProfile(base_price, 0.015, 2_000, 2.0, 0.02, 0.08, "user_csv"))


def with_profile(product: Product, **changes: object) -> Product:
    """Copy of ``product`` with some profile fields replaced."""
    return replace(product, profile=replace(product.profile, **changes))


# ----- conIds ------------------------------------------------------------------------------------

_CON_ID_BLOCK = 100_000
_MONTH_INDEX_BASE_YEAR = 1900


def product_prefix(symbol: str) -> int:
    """Stable 4-digit-ish prefix of a product's conIds (from a CRC of the symbol)."""
    return 1_000 + zlib.crc32(symbol.upper().encode("ascii")) % 19_000


def month_con_id(symbol: str, year: int, month: int) -> int:
    """Stable conId of one contract month: product prefix then a month index (fits in int32)."""
    index = (year - _MONTH_INDEX_BASE_YEAR) * 12 + month
    if not 0 < index < _CON_ID_BLOCK:
        raise ValueError(f"contract year {year} out of range for {symbol}")
    return product_prefix(symbol) * _CON_ID_BLOCK + index


def continuous_con_id(symbol: str) -> int:
    """conId of a product's CONTFUT (history only): the month index 0 of its block."""
    return product_prefix(symbol) * _CON_ID_BLOCK


def decode_con_id(con_id: int) -> tuple[int, int, int] | None:
    """(prefix, year, month) of a month conId, or None for a CONTFUT/invalid one."""
    prefix, index = divmod(con_id, _CON_ID_BLOCK)
    if index == 0:
        return None
    year, month0 = divmod(index - 1, 12)
    return prefix, year + _MONTH_INDEX_BASE_YEAR, month0 + 1


def check_unique_prefixes(symbols: list[str]) -> None:
    """Raise if two products' conId blocks collide (so conIds stay unique across products)."""
    seen: dict[int, str] = {}
    for sym in symbols:
        p = product_prefix(sym)
        if p in seen:
            raise ValueError(f"conId prefix collision between {seen[p]} and {sym}; rename one")
        seen[p] = sym


# ----- listed months ------------------------------------------------------------------------------

def make_month(product: Product, year: int, month: int) -> FutureMonth:
    """The ``FutureMonth`` of ``product`` delivering in ``year``-``month``."""
    sym = product.spec.symbol
    ltd = EXPIRY_RULES[product.expiry_rule](year, month)
    assert is_business_day(ltd)
    return FutureMonth(
        con_id=month_con_id(sym, year, month),
        symbol=sym,
        local_symbol=f"{sym}{MONTH_CODES[month - 1]}{year % 10}",
        contract_month=f"{year:04d}{month:02d}",
        last_trade_date=ltd,
        real_expiration_date=ltd,
    )


def months_around(product: Product, first_year: int, last_year: int) -> list[FutureMonth]:
    """Every listed-cycle month delivering in ``[first_year, last_year]``, by expiry."""
    codes = product.spec.listed_months
    out = [
        make_month(product, y, m)
        for y in range(first_year, last_year + 1)
        for m in range(1, 13)
        if MONTH_CODES[m - 1] in codes
    ]
    out.sort(key=lambda fm: fm.last_trade_date)
    return out


def listing_date(product: Product, months: list[FutureMonth], index: int) -> dt.date:
    """First trade date of ``months[index]``: the day after the month ``months_listed`` earlier expired."""
    earlier = index - product.months_listed
    if earlier < 0:
        return dt.date.min
    return months[earlier].last_trade_date + dt.timedelta(days=1)
