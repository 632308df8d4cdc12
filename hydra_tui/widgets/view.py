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
    """One experiment of a market's agent; ``progress`` is the share of its time limit used while it
    runs (the worker reports no finer progress) and 1.0 once finished."""

    experiment_id: str
    hypothesis: str
    status: str
    progress: float
    elapsed_s: float | None
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class DetectorReading:
    """One drift or performance detector: its statistic against its alarm threshold."""

    name: str
    statistic: float | None
    threshold: float | None
    lower_alarms: bool = False
    """True for a p-value (KS test): the alarm is a statistic at or below the threshold."""

    @property
    def ratio(self) -> float | None:
        """How far toward its alarm the detector is (>= 1 is an alarm); None when unknown."""
        if self.statistic is None or not self.threshold:
            return None
        if self.lower_alarms:
            return float("inf") if self.statistic <= 0 else float(self.threshold) / float(self.statistic)
        return float(self.statistic) / float(self.threshold)

    @property
    def alarm(self) -> bool:
        r = self.ratio
        return r is not None and r >= 1.0


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A candidate that passed the gate and waits for the operator (what ``a`` approves)."""

    market: str
    version: str
    hypothesis: str
    previous: str | None
    trading_date: str
    gate: str
    """The gate's evidence in words (windows won, DM test, deflated Sharpe), or why there was none."""


@dataclass(frozen=True, slots=True)
class MarketAgentView:
    """One market's agent: its champion, phase, detectors, diagnosis, experiments and approvals."""

    market: str
    champion: str | None = None
    family: str | None = None
    phase: str = "IDLE"
    autonomy: str = ""
    detectors: tuple[DetectorReading, ...] = ()
    diagnosis: str = ""
    diagnosis_kind: str = ""
    evidence: str = ""
    experiments: tuple[ExperimentRow, ...] = ()
    pending: PendingApproval | None = None
    last_change: str = ""
    """The last promotion or rollback that made the champion what it is."""
    derisked: float | None = None
    """The share of size the agent allows while the champion is de-risked; None when it is not."""

    @property
    def worst(self) -> DetectorReading | None:
        """The detector closest to (or furthest past) its threshold."""
        known = [d for d in self.detectors if d.ratio is not None]
        return max(known, key=lambda d: d.ratio or 0.0) if known else None


@dataclass(frozen=True, slots=True)
class AgentView:
    """Every market's agent; ``enabled`` False when the engine runs without self-healing."""

    enabled: bool = False
    markets: tuple[MarketAgentView, ...] = ()

    def market(self, symbol: str | None) -> MarketAgentView | None:
        return next((m for m in self.markets if m.market == symbol), self.markets[0] if self.markets else None)

    @property
    def pending(self) -> tuple[PendingApproval, ...]:
        return tuple(m.pending for m in self.markets if m.pending is not None)


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
    clock_kind: str = "sim"
    """Whose clock ``now`` is: "sim" (lock-step simulated), "broker" (the broker's time) or "wall"."""
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


def clock_kind(engine: Any) -> str:
    if getattr(engine, "lockstep", False):
        return "sim"
    return "broker" if getattr(engine, "broker_time", False) else "wall"


def tripped_breakers(engine: Any) -> str:
    """Names of the breakers not ACTIVE (what made the state REDUCING or HALTED), from the gate's
    persisted records, so the cause shows after a restart too."""
    gate = getattr(engine, "risk_gate", None)
    if gate is None:
        return ""
    try:
        return ", ".join(f"{b.name} {b.state.lower()}" for b in gate.snapshot().breakers if b.state != "ACTIVE")
    except Exception:  # noqa: BLE001 - the header shows the state without its cause
        return ""


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


# ----------------------------------------------------------------- the agent, per market


def agent_loops(engine: Any) -> dict[str, Any]:
    """Model key -> its AgentLoop (``engine.agent.markets``: one agent per market, or per group of
    markets the user named); empty before the engine built its agents."""
    agent = getattr(engine, "agent", None)
    return {} if agent is None else {str(k): v for k, v in agent.markets.items()}


def champions(engine: Any) -> dict[str, str | None]:
    """Market -> the champion version it trades (``status().champions``)."""
    return dict(engine.status().champions)


def detector_name(stream: str, detector: str) -> str:
    """``ret_1/cusum_mean`` for a feature's detector; ``perf:log_loss`` alone for a performance CUSUM."""
    return stream if stream.startswith("perf:") else f"{stream}/{detector}"


def gate_text(gate: Any) -> str:
    """The promotion gate's evidence in words."""
    if not isinstance(gate, dict):
        return "no gate comparison (first champion of this market)"
    parts = ["passed" if gate.get("passed") else "FAILED"]
    if gate.get("n_windows"):
        parts.append(f"won {gate.get('windows_won')}/{gate.get('n_windows')} windows")
    if gate.get("weighted_win") is not None:
        parts.append(f"weighted win {float(gate['weighted_win']):.2f}")
    dm, dsr = gate.get("dm") or {}, gate.get("dsr") or {}
    if dm.get("p_value") is not None:
        parts.append(f"DM p={float(dm['p_value']):.3f}")
    if dsr.get("dsr") is not None:
        parts.append(f"deflated Sharpe {float(dsr['dsr']):.2f} ({dsr.get('n_trials')} trials)")
    reasons = gate.get("reasons") or []
    if reasons:
        parts.append("; ".join(str(r) for r in reasons[:2]))
    return ", ".join(parts)


def pending_approval(market: str, pending: Any) -> PendingApproval | None:
    if not isinstance(pending, dict) or not pending.get("version"):
        return None
    return PendingApproval(market, str(pending["version"]), str(pending.get("hypothesis_key", "")),
                           pending.get("previous"), str(pending.get("trading_date") or ""), gate_text(pending.get("gate")))


def _evidence(payload: Any) -> str:
    if not isinstance(payload, dict):
        return str(payload or "")
    ev = payload.get("evidence")
    feats = payload.get("features") or []
    out = []
    if feats:
        out.append("features " + ", ".join(str(f) for f in feats[:4]))
    if isinstance(ev, dict):
        for k, v in list(ev.items())[:4]:
            if v not in (None, [], {}, ""):
                out.append(f"{k}={_short(v)}")
    elif ev:
        out.append(_short(ev))
    return "; ".join(out)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return f"[{len(v)}]" if len(v) > 3 else "[" + ", ".join(_short(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in list(v.items())[:3]) + "}"
    return str(v)[:60]


def _parse_at(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)


def experiment_rows(rows: list[Any], time_limit_s: float, wall_now: dt.datetime) -> tuple[ExperimentRow, ...]:
    """The journal's experiments (oldest first) as pane rows; the agent stamps wall time, so the
    elapsed time of a running experiment is measured against the wall clock."""
    out = []
    for r in rows:
        running = r.status == "RUNNING"
        elapsed = r.duration_s
        if running:
            started = _parse_at(r.started_at)
            elapsed = max(0.0, (wall_now - started).total_seconds()) if started else None
        progress = 1.0 if not running else min(1.0, (elapsed or 0.0) / time_limit_s) if time_limit_s > 0 else 0.0
        out.append(ExperimentRow(r.experiment_id, r.hypothesis_key, r.status, progress, elapsed, r.outcome or ""))
    return tuple(out)


async def market_agent_view(market: str, loop: Any, champion: str | None, wall_now: dt.datetime,
                            derisked: float | None = None) -> MarketAgentView:
    """One market's agent from its AgentLoop: status, registry and journal (each part optional)."""
    st = loop.status()
    champion = st.get("champion") or champion
    family, last_change = None, ""
    try:
        rec = await loop.registry.champion_record()
        if rec is not None:
            champion, family = rec.version, rec.family
            changes = [e for e in await loop.registry.events(rec.version) if e.kind in ("promote", "rollback", "register")]
            if changes:
                e = changes[-1]
                verb = {"promote": "promoted", "rollback": "restored by rollback", "register": "registered"}[e.kind]
                last_change = f"{e.at[:10]} {e.version} {verb}" + (f" (was {e.previous})" if e.previous and e.kind != "register"
                                                                   else "") + (f": {e.reason}" if e.reason else "")
    except Exception:  # noqa: BLE001 - the pane shows what it could read
        log.debug("tui.agent_registry_unreadable", market=market)
    diagnosis, kind, evidence = "", "", ""
    experiments: tuple[ExperimentRow, ...] = ()
    try:
        rows = await loop.journal.query(entry_type="diagnosis", limit=1)
        if rows:
            last = rows[-1]
            diagnosis, kind, evidence = f"{last.trading_date or ''} {last.summary}".strip(), last.outcome, _evidence(last.payload)
        limit_s = float(getattr(loop.config, "experiment_time_limit_s", 0) or 0)
        experiments = experiment_rows(await loop.journal.experiments(limit=5), limit_s, wall_now)
    except Exception:  # noqa: BLE001
        log.debug("tui.agent_journal_unreadable", market=market)
    detectors = tuple(DetectorReading(detector_name(str(d["stream"]), str(d["detector"])), d.get("statistic"),
                                      d.get("threshold"),
                                      str(d["detector"]).endswith("_p"))
                      for d in st.get("detectors", ()))
    return MarketAgentView(market, champion, family, str(st.get("phase", "IDLE")), str(st.get("autonomy", "")),
                           detectors, diagnosis, kind, evidence, experiments, pending_approval(market, st.get("pending")),
                           last_change, derisked)


async def agent_view(engine: Any, wall_now: dt.datetime | None = None) -> AgentView:
    """Every market's agent (one row each in the pane), or the champions alone when the agent is off."""
    wall_now = wall_now or dt.datetime.now(dt.timezone.utc)
    st = engine.status()
    champs, derisked = dict(st.champions), dict(st.derisked)
    loops = agent_loops(engine)
    if not loops or not getattr(engine, "agent_enabled", True):
        return AgentView(False, tuple(MarketAgentView(m, c, phase="OFF") for m, c in champs.items()))
    views = [await market_agent_view(m, loop, champs.get(m), wall_now, derisked.get(m)) for m, loop in loops.items()]
    return AgentView(True, tuple(views))
