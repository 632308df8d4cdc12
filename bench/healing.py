"""Healing benchmark: does HYDRA's agent beat not healing, blind retraining and always-newest?

Seeded, on the embedded exchange's own series (``build_universe``): for each seed and scenario the
market's labelled days are split at the scenario's true change date. Every arm starts from the
same champion, bootstrapped as the engine does it 50 trading days before the change (the default
demo's geometry: the default spec fitted with a purged held-out segment, ``fit_with_holdout``),
and is scored out of sample on the 120 trading days after the change:

- (a) ``hydra``: the real ``AgentLoop``, autonomous, on a real SQLite store, day by day: its
  observer (feature and performance detectors at the configured false-alarm budget, against the
  bootstrap's held-out reference: ``model.bootstrap.fit_with_holdout``, as the engine bootstraps),
  diagnosis, playbook (the retrain since the alarm first), the experiment worker's
  ``evaluate_candidate`` (through ``run_job``, in a worker thread instead of a subprocess: the same
  job document, function and result file), the gate with evidence since the episode's first alarm,
  promotion, rollback watch and de-risking. It is scored on what it trades: the champion's P(up),
  or P = 0.5 and no position while the market is de-risked (a flat day counts half a hit and a
  coin's log loss). ``hydra (model)`` scores the same run's champion as if it were never cut.
  Experiments end within the cycle (the engine's run in the background and land a day or so later).
- (b) ``never``: the same bootstrap champion, never retrained.
- (c) ``every20``: the default spec refitted on every known day every 20 trading days, no gate.
- (d) ``newest``: FreqAI's policy: always the newest model, refitted every day on the last 250
  labelled days (the playbook's first recent window).

At decision date t a model knows labelled rows up to t-2 (a label is the next open to the
following open). Metrics per arm: hit rate, mean log loss, annualized Sharpe of the signal's
tradable return net of the cost estimate (half the product's typical spread plus 2 bps per unit of
position change; the agent's experiments are scored on the same cost); 95 % bootstrap intervals
over seeds. Also: detection delay (first alarm on or after the change, trading days), alarms before
it, de-risk and promotion days, experiments, and false promotions (any promotion on a market whose
relation does not change: ``steady`` and the real WTI history, where the "change" is only a date,
or before the change).

Usage: python bench/healing.py [--seeds 20] [--scenarios reversion_to_momentum,momentum_flip,steady,wti]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra_engine.agent.core import AgentConfig  # noqa: E402
from hydra_engine.engine_setup import agent_config as engine_agent_config  # noqa: E402
from hydra_engine.agent.experiment_worker import run_job  # noqa: E402
from hydra_engine.agent.experiments import ExperimentJob, ExperimentResult, ExperimentStatus  # noqa: E402
from hydra_engine.agent.loop import AgentLoop  # noqa: E402
from hydra_engine.agent.state import AutonomyLevel  # noqa: E402
from hydra_engine.model.baseline import BaselineModel, ModelSpec  # noqa: E402
from hydra_engine.model.bootstrap import fit_with_holdout  # noqa: E402
from hydra_engine.model.features import build_features, make_labels, tradable_returns  # noqa: E402
from hydra_engine.model.registry import ModelRegistry  # noqa: E402
from hydra_engine.sim.catalog import DEFAULT_PRODUCTS  # noqa: E402
from hydra_engine.sim.scenarios import DEMO_CHANGE_OFFSET_DAYS  # noqa: E402
from hydra_engine.sim.universe import build_universe  # noqa: E402
from hydra_engine.store.migrations import v003_models, v004_agent, v006_market_champions  # noqa: E402

EVAL_DAYS = 120
LEAD_DAYS = DEMO_CHANGE_OFFSET_DAYS
"""Trading days between the bootstrap and the change (the default demo's geometry)."""
ARMS = ("hydra", "hydra_model", "never", "every20", "newest")
ARM_LABELS = {"hydra": "(a) hydra", "hydra_model": "    (model)", "never": "(b) never", "every20": "(c) every20",
              "newest": "(d) newest"}
NEWEST_WINDOW = 250
RETRAIN_EVERY = 20
BARS_FOR_FEATURES = 1000
"""Bars the engine hands the agent each day (``CycleConfig.bars_for_features``)."""
_END = dt.date(2020, 12, 31)


@dataclass(frozen=True, slots=True, eq=False)
class MarketData:
    """One market's bars, labelled days and the ground truth's change date."""

    label: str
    seed: int
    symbol: str
    change: pd.Timestamp
    changes: bool
    """False where nothing changes (``steady``, WTI): any promotion there is a false one."""
    bars: pd.DataFrame
    features: pd.DataFrame
    labels: pd.Series
    returns: pd.Series
    cost_bps: float


def cost_bps(symbol: str) -> float:
    """Cost estimate per unit of position change: half the typical spread plus 2 bps of impact."""
    p = DEFAULT_PRODUCTS[symbol]
    return 1e4 * p.profile.spread_ticks * p.spec.min_tick / 2 / p.profile.base_price + 2.0


def market_data(seed: int, scenario: str, symbol: str = "ZO") -> MarketData:
    """``scenario``: a registered scenario name for ``symbol``, or ``wti`` (CL on real WTI closes)."""
    if scenario == "wti":
        symbol = "CL"
        u = build_universe(seed=seed, symbols=["CL"], start=dt.date(2015, 1, 1), end=_END)
    else:
        u = build_universe(seed=seed, symbols=[symbol], scenarios={symbol: scenario}, start=dt.date(2015, 1, 1), end=_END)
    info = u.scenario(symbol)
    bars = pd.DataFrame([{"date": b.date, "open": b.open, "high": b.high, "low": b.low, "close": b.close,
                          "volume": b.volume} for b in u.continuous_bars(symbol, _END, 5000)])
    bars = bars.set_index(pd.DatetimeIndex(pd.to_datetime(bars.pop("date"))))
    f, y, r = build_features(bars), make_labels(bars), tradable_returns(bars)
    idx = f.index.intersection(y.index).intersection(r.index).sort_values()
    if info.change_dates:
        change, changes = pd.Timestamp(info.change_dates[0]), scenario != "steady"
    else:  # nothing planted: the default demo's date stands in
        start = pd.Timestamp(u.default_clock_start().date())
        change, changes = idx[idx >= start][LEAD_DAYS], False
    if scenario == "steady":
        changes = False
    return MarketData(scenario, seed, symbol, change, changes, bars, f.loc[idx], y.loc[idx], r.loc[idx], cost_bps(symbol))


@dataclass(slots=True)
class ArmResult:
    """One arm's out-of-sample days after the change, plus the agent's events (trading days
    relative to the change: 0 is the change date)."""

    p_up: np.ndarray
    labels: np.ndarray
    net: np.ndarray
    alarms: list[int] = field(default_factory=list)
    promotions: list[int] = field(default_factory=list)
    derisks: list[int] = field(default_factory=list)
    experiments: int = 0
    events: list[tuple[int, str, str]] = field(default_factory=list)
    """(day, hypothesis kind, outcome and the gate's reasons) of every experiment."""

    def metrics(self) -> dict[str, float]:
        p = np.clip(self.p_up, 1e-6, 1 - 1e-6)
        y = self.labels
        sd = float(self.net.std(ddof=1))
        hit = np.where(self.p_up == 0.5, 0.5, ((p > 0.5) == (y == 1)).astype(float))  # a flat day: half a hit
        return {"hit": float(hit.mean()),
                "log_loss": float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()),
                "sharpe": float(self.net.mean() / sd * math.sqrt(252)) if sd > 0 else 0.0}


def _fit(spec: ModelSpec, d: MarketData, t: int) -> BaselineModel:
    """Fit on the rows known at decision position ``t`` (labels up to t-2)."""
    return BaselineModel(spec).fit(d.features.iloc[: t - 1], d.labels.iloc[: t - 1])


def _net(p: np.ndarray, ret: np.ndarray, cost: float, prev: float, size: np.ndarray | None = None) -> np.ndarray:
    pos = np.where(p > 0.5, 1.0, -1.0) * (1.0 if size is None else size)
    change = np.abs(np.diff(np.concatenate(([prev], pos))))
    return pos * ret - change * cost * 1e-4


def _scored(d: MarketData, p: np.ndarray, lo: int, size: np.ndarray | None = None) -> ArmResult:
    hi = lo + len(p)
    return ArmResult(p, d.labels.iloc[lo:hi].to_numpy(), _net(p, d.returns.iloc[lo:hi].to_numpy(), d.cost_bps, 0.0, size))


def bootstrap_champion(d: MarketData, config: AgentConfig) -> tuple[BaselineModel, dict[str, Any]]:
    """The engine's bootstrap: the default spec on the bars known before the first decision, with a
    purged held-out segment as the monitors' reference (every arm starts from this model)."""
    c = int(d.features.index.searchsorted(d.change))
    known = d.bars.loc[: d.features.index[c - LEAD_DAYS - 1]].iloc[-BARS_FOR_FEATURES:]
    return fit_with_holdout(known, config.default_spec, cost_bps=config.cost_bps)


def run_static_arms(d: MarketData, spec: ModelSpec, boot: BaselineModel | None = None) -> dict[str, ArmResult]:
    """(b), (c) and (d): no gate, no monitor. ``boot``: the starting champion (default: the spec
    fitted on every labelled day known at the start)."""
    c = int(d.features.index.searchsorted(d.change))
    t0, hi = c - LEAD_DAYS, c + EVAL_DAYS
    x = d.features
    boot = boot or _fit(spec, d, t0)
    out = {"never": _scored(d, boot.predict_proba(x.iloc[c:hi]), c)}
    p20 = np.empty(hi - c)
    model = boot
    for t in range(t0, hi):
        if t > t0 and (t - t0) % RETRAIN_EVERY == 0:
            model = _fit(spec, d, t)
        if t >= c:
            p20[t - c] = model.predict_proba(x.iloc[t : t + 1])[0]
    out["every20"] = _scored(d, p20, c)
    newest = ModelSpec.from_dict(spec.to_dict() | {"train_window_days": NEWEST_WINDOW})
    pn = np.array([_fit(newest, d, t).predict_proba(x.iloc[t : t + 1])[0] for t in range(c, hi)])
    out["newest"] = _scored(d, pn, c)
    return out


class ThreadExecutor:
    """The experiment seam for a benchmark: each job's entry runs through the worker's own
    ``run_job`` in a thread of this process (no interpreter start per experiment)."""

    async def run(self, job: ExperimentJob) -> ExperimentResult:
        doc = await asyncio.to_thread(run_job, job.to_dict())
        status = ExperimentStatus.OK if doc["ok"] else ExperimentStatus.ERROR
        return ExperimentResult(job.experiment_id, status, float(doc["duration_s"]), doc.get("result"), doc.get("error"), str(job.log_path))

    async def shutdown(self) -> None:
        return None


def agent_config(d: MarketData, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """The agent's defaults, autonomous, scored on the market's cost estimate; ``overrides``: dotted
    ``[agent]`` keys (``gate.min_oos_days``), checked as the settings check them."""
    raw: dict[str, Any] = {"initial_autonomy": AutonomyLevel.AUTONOMOUS.value, "cost_bps": d.cost_bps}
    for key, value in (overrides or {}).items():
        *path, leaf = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    cfg: AgentConfig = engine_agent_config(raw)
    return cfg


async def _agent_arm(d: MarketData, config: AgentConfig, work: Path,
                     boot: tuple[BaselineModel, dict[str, Any]] | None = None) -> tuple[ArmResult, ArmResult]:
    import aiosqlite

    c = int(d.features.index.searchsorted(d.change))
    t0, hi = c - LEAD_DAYS, c + EVAL_DAYS
    x = d.features
    db = await aiosqlite.connect(work / "store.db")
    try:
        await db.executescript(v003_models.SQL + v004_agent.SQL + v006_market_champions.SQL)
        await db.commit()
        registry = ModelRegistry(db, work / "models").for_market(d.symbol)
        agent = AgentLoop(db, registry, ThreadExecutor(), work / "experiments", config, market=d.symbol)
        await agent.start()
        model, metrics = boot or await asyncio.to_thread(bootstrap_champion, d, config)
        await registry.register(model, metrics, mutation="bootstrap", status="champion")
        p = np.empty(hi - c)
        size = np.empty(hi - c)
        for t in range(t0, hi):
            day = x.index[t]
            await agent.run_cycle(day.date(), d.bars.loc[:day].iloc[-BARS_FOR_FEATURES:])
            if t >= c:
                entry = await registry.champion_entry()
                assert entry is not None
                p[t - c] = float(entry[1].predict_proba(x.iloc[t : t + 1])[0])
                size[t - c] = agent.size_fraction
        entries = await agent.journal.query(limit=100_000)
    finally:
        await db.close()
    traded = np.where(size > 0, p, 0.5)
    out = _scored(d, traded, c, size)
    model_only = _scored(d, p, c)
    pos = {ts: i - c for i, ts in enumerate(x.index)}

    def rel(date: str | None) -> int | None:
        if not date:
            return None
        ts = pd.Timestamp(date[:10])
        i = int(x.index.searchsorted(ts))
        return pos.get(x.index[i]) if i < len(x.index) else None

    for e in sorted(entries, key=lambda e: (e.trading_date or "", e.id)):
        k = rel(e.trading_date)
        if k is None:
            continue
        if e.entry_type == "observation" and e.outcome == "alarm":
            out.alarms.append(k)
        elif e.entry_type == "decision" and e.outcome == "promoted":
            out.promotions.append(k)
        elif e.entry_type == "decision" and e.outcome == "derisk":
            out.derisks.append(k)
        elif e.entry_type == "experiment":
            out.experiments += 1
            out.events.append((k, (e.payload or {}).get("hypothesis", {}).get("kind", "?"), e.summary))
    return out, model_only


def run_agent_arm(d: MarketData, config: AgentConfig, work: Path,
                  boot: tuple[BaselineModel, dict[str, Any]] | None = None) -> tuple[ArmResult, ArmResult]:
    """(a): the real agent day by day; (what it trades, its champion's forecasts alone)."""
    return asyncio.run(_agent_arm(d, config, work, boot))


def run_one(seed: int, scenario: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every arm on one (seed, scenario); returns plain numbers (picklable for a process pool)."""
    _quiet()
    t0 = time.perf_counter()
    d = market_data(seed, scenario)
    config = agent_config(d, overrides)
    spec = ModelSpec.from_dict(config.default_spec)
    boot = bootstrap_champion(d, config)
    arms = run_static_arms(d, spec, boot[0])
    with tempfile.TemporaryDirectory(prefix="healing-") as tmp:
        arms["hydra"], arms["hydra_model"] = run_agent_arm(d, config, Path(tmp), boot)
    a = arms["hydra"]
    return {"seed": seed, "scenario": scenario, "changes": d.changes, "metrics": {k: v.metrics() for k, v in arms.items()},
            "alarms": a.alarms, "promotions": a.promotions, "derisks": a.derisks, "experiments": a.experiments,
            "events": a.events, "daily_net": {k: v.net.tolist() for k, v in arms.items()}, "seconds": time.perf_counter() - t0}


def _quiet() -> None:
    import structlog

    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def bootstrap_ci(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean over seeds."""
    rng = np.random.default_rng(seed)
    if values.size < 2:
        return float(values.mean()), float(values.mean())
    means = rng.choice(values, size=(n, values.size), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scenario: per-arm mean and CI of each metric, detection delay and promotion counts."""
    out: dict[str, dict[str, Any]] = {}
    for scen in sorted({r["scenario"] for r in rows}):
        rs = [r for r in rows if r["scenario"] == scen]
        s: dict[str, Any] = {"n_seeds": len(rs), "arms": {}, "changes": rs[0]["changes"]}
        for arm in ARMS:
            s["arms"][arm] = {m: (float(np.mean(v)), *bootstrap_ci(np.asarray(v)))
                              for m in ("hit", "log_loss", "sharpe")
                              for v in [[r["metrics"][arm][m] for r in rs]]}
        first_alarm = [min([a for a in r["alarms"] if a >= 0], default=None) for r in rs]
        detected = [a for a in first_alarm if a is not None]
        s["detected"] = len(detected)
        s["delay_median"] = float(np.median(detected)) if detected else None
        s["alarms_before_change"] = sum(sum(1 for a in r["alarms"] if a < 0) for r in rs)
        s["derisked_seeds"] = sum(1 for r in rs if any(k >= 0 for k in r["derisks"]))
        s["derisk_day_median"] = (float(np.median([min(k for k in r["derisks"] if k >= 0) for r in rs if any(k >= 0 for k in r["derisks"])]))
                                  if s["derisked_seeds"] else None)
        s["promoted_seeds"] = sum(1 for r in rs if r["promotions"])
        s["promotion_day_median"] = float(np.median([r["promotions"][0] for r in rs if r["promotions"]])) if s["promoted_seeds"] else None
        s["false_promotions"] = sum(len([p for p in r["promotions"] if p < 0 or not r["changes"]]) for r in rs)
        s["experiments"] = sum(r["experiments"] for r in rs)
        s["behind"] = {arm: {m: sum(1 for r in rs if _behind(r, arm, m)) for m in ("log_loss", "sharpe")} for arm in ("never", "every20", "newest")}
        out[scen] = s
    return out


def _behind(r: dict[str, Any], arm: str, metric: str) -> bool:
    """(a) behind ``arm`` on one seed by more than a small margin (0.01 nats, 0.25 Sharpe)."""
    a, b = r["metrics"]["hydra"][metric], r["metrics"][arm][metric]
    return a > b + 0.01 if metric == "log_loss" else a < b - 0.25


def run(seeds: list[int], scenarios: list[str], workers: int = 2, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    jobs = [(s, sc, dict(overrides or {})) for sc in scenarios for s in seeds]
    if workers <= 1:
        return [run_one(*job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_one, *zip(*jobs)))


def print_table(summary: dict[str, dict[str, Any]]) -> None:
    for scen, s in summary.items():
        print(f"\n{scen}: {s['n_seeds']} seeds, out of sample over the {EVAL_DAYS} trading days after the "
              f"{'change' if s['changes'] else 'stand-in date (nothing changes)'} (95 % bootstrap CI over seeds)")
        print(f"{'arm':<12} {'hit rate':>22} {'log loss':>24} {'net Sharpe':>22}")
        for arm, m in s["arms"].items():
            cell = lambda v, f: f"{v[0]:{f}} [{v[1]:{f}}, {v[2]:{f}}]"  # noqa: E731
            print(f"{ARM_LABELS[arm]:<12} {cell(m['hit'], '.3f'):>22} {cell(m['log_loss'], '.4f'):>24} {cell(m['sharpe'], '.2f'):>22}")
        med = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
        print(f"hydra: first alarm on/after the change on {s['detected']}/{s['n_seeds']} seeds (median delay {med(s['delay_median'])} "
              f"trading days), {s['alarms_before_change']} alarm days before it; de-risked on {s['derisked_seeds']} seeds "
              f"(median day {med(s['derisk_day_median'])}); {s['experiments']} experiments; promoted on {s['promoted_seeds']} seeds "
              f"(median day {med(s['promotion_day_median'])}); false promotions {s['false_promotions']}")
        behind = "; ".join(f"{arm}: log loss {v['log_loss']}, Sharpe {v['sharpe']}" for arm, v in s["behind"].items())
        print(f"seeds where (a) is behind (by > 0.01 nats or > 0.25 Sharpe): {behind}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--scenarios", default="reversion_to_momentum,momentum_flip,steady,wti")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an [agent] setting for arm (a), dotted (gate.min_oos_days=40); repeatable")
    a = ap.parse_args()
    overrides: dict[str, Any] = {}
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = json.loads(value) if value[:1] in "-0123456789[{tf" else value
    t0 = time.perf_counter()
    rows = run(list(range(a.first_seed, a.first_seed + a.seeds)), a.scenarios.split(","), a.workers, overrides)
    print_table(summarize(rows))
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.0f} s (median {np.median([r['seconds'] for r in rows]):.0f} s per run)")


if __name__ == "__main__":
    main()
