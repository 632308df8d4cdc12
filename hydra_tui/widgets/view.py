"""One read of the engine for the main screen: what every pane shows, gathered in one place.

The panes render a ``View`` and never call the engine, so a widget error cannot reach an order and
a snapshot test can feed a fixed ``View``. ``gather`` reads ``Engine.status()``, the order manager's
working orders, the broker's marks, the agent's status and journal,
and the fill journal; every part is optional and a failure leaves that part empty.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PositionRow:
    local_symbol: str
    month: str
    qty: float
    avg_cost: float | None
    mark: float | None
    unrealized: float | None
    days_to_roll: int | None


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_ref: str
    side: str
    local_symbol: str
    limit: float
    filled: float
    qty: float
    step: int
    age_s: float
    status: str


@dataclass(frozen=True, slots=True)
class FillRow:
    exec_id: str
    time: dt.datetime
    symbol: str
    direction: str
    qty: float
    order_price: float | None
    fill_price: float
    predicted: float | None
    actual: float | None
    latency_ms: float | None


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    experiment_id: str
    hypothesis: str
    status: str
    progress: float
    elapsed_s: float | None


@dataclass(frozen=True, slots=True)
class AgentView:
    enabled: bool = False
    phase: str = "IDLE"
    champion: str | None = None
    family: str | None = None
    detectors: tuple[tuple[str, float | None, float | None], ...] = ()
    """(name, statistic, threshold)."""
    diagnosis: str = ""
    evidence: str = ""
    experiments: tuple[ExperimentRow, ...] = ()
    pending: str | None = None
    last_change: str = ""


@dataclass(frozen=True, slots=True)
class MarketClock:
    symbol: str
    next_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class View:
    """Everything the main screen shows at one instant."""

    mode: str = "SIM"
    connection: str = "starting"
    connected: bool = False
    last_message_age_s: float | None = None
    trading_state: str = "UNKNOWN"
    breaker: str = ""
    paused: bool = False
    agent_phase: str = "IDLE"
    now: dt.datetime | None = None
    clocks: tuple[MarketClock, ...] = ()
    account: str = ""
    net_liquidation: float | None = None
    cash: float | None = None
    daily_pnl: float | None = None
    drawdown: float | None = None
    equity: tuple[float, ...] = ()
    positions: tuple[PositionRow, ...] = ()
    orders: tuple[OrderRow, ...] = ()
    fills: tuple[FillRow, ...] = ()
    agent: AgentView = field(default_factory=AgentView)
    cycles_run: int = 0
    message: str = ""
    """The status line: the last engine error or notice."""


def _mark(engine: Any, con_id: int) -> float | None:
    try:
        mark = engine.broker.portfolio_mark(con_id)
    except Exception:  # noqa: BLE001 - the pane shows no mark
        return None
    return float(mark) if mark is not None else None


def _days_to_roll(engine: Any, con_id: int, now: dt.datetime) -> int | None:
    """Trading days until the month's roll (its last trade date less the market's roll days)."""
    try:
        from hydra_engine.markets import trading_days_between

        cm = engine.broker.known_month(con_id)
        market = next((m for m in engine.settings.markets if cm is not None and m.symbol == cm.symbol), None)
        if cm is None or market is None:
            return None
        return int(trading_days_between(market, now.date(), cm.last_trade_date)) - int(market.roll_days)
    except Exception:  # noqa: BLE001 - shown as unknown
        return None


def positions(engine: Any, now: dt.datetime) -> tuple[PositionRow, ...]:
    held = list(getattr(engine.runner, "last_positions", None) or [])
    rows = []
    for p in held:
        if not p.quantity:
            continue
        mult = float(p.multiplier or 1.0)
        avg = float(p.avg_cost) / mult if p.avg_cost else None
        mark = _mark(engine, p.con_id)
        unreal = (mark - avg) * float(p.quantity) * mult if mark is not None and avg is not None else None
        rows.append(PositionRow(p.local_symbol, p.contract_month, float(p.quantity), avg, mark, unreal,
                                _days_to_roll(engine, p.con_id, now)))
    return tuple(rows)


def orders(engine: Any, now: dt.datetime) -> tuple[OrderRow, ...]:
    om = engine.order_manager
    if om is None:
        return ()
    rows = []
    for w in om.working_orders:
        age = max(0.0, (now - w.arrival_at).total_seconds()) if w.arrival_at else 0.0
        rows.append(OrderRow(w.order_ref, w.side, w.month.local_symbol, float(w.limit), float(w.filled), float(w.qty),
                             int(w.reprices), age, w.status))
    return tuple(rows)


def fill_rows(records: list[Any]) -> tuple[FillRow, ...]:
    return tuple(FillRow(f.exec_id, f.fill_time, f.symbol, f.direction, float(f.qty), f.limit_price, float(f.fill_price),
                         f.predicted_slippage, f.actual_slippage, f.latency_ms) for f in records)


async def agent_view(engine: Any, experiments: dict[str, ExperimentRow], last_change: str) -> AgentView:
    agent = engine.agent
    if agent is None or not engine.agent_enabled:
        return AgentView(enabled=False, champion=engine.status().champion, last_change=last_change)
    st = agent.status()
    pending = st.get("pending") or None
    champion = st.get("champion") or engine.status().champion
    family = None
    try:
        rec = await engine.registry.champion_record()
        if rec is not None:
            champion, family = rec.version, rec.family
    except Exception:  # noqa: BLE001
        pass
    diagnosis, evidence = "", ""
    try:
        rows = await agent.journal.query(entry_type="diagnosis", limit=1000)
        if rows:
            last = rows[-1]
            diagnosis = str(last.summary)
            payload = last.payload or {}
            evidence = ", ".join(f"{k}={v}" for k, v in list(payload.items())[:4]) if isinstance(payload, dict) else str(payload)
    except Exception:  # noqa: BLE001
        pass
    detectors = tuple((f"{d['stream']}/{d['detector']}", d.get("statistic"), d.get("threshold"))
                      for d in st.get("detectors", ()))
    pend = None
    if isinstance(pending, dict):
        pend = f"{pending.get('version')} ({pending.get('hypothesis_key', '')})"
    return AgentView(True, str(st.get("phase", "IDLE")), champion, family, detectors, diagnosis, evidence,
                     tuple(experiments.values())[-5:], pend, last_change)
