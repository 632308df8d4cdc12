"""Healing benchmark: does HYDRA's agent beat not healing, blind retraining and always-newest?

Seeded, in-process, on the embedded exchange's own series (``build_universe``): for each seed and
scenario the market's labelled days are split at the scenario's true change date. Every arm starts
from the same bootstrap champion (the agent's default spec fitted on everything known 50 trading
days before the change, the default demo's geometry) and is scored out of sample on the 120
trading days after the change:

- (a) ``hydra``: the agent's decision logic, autonomous: its performance monitor (CUSUM on log
  loss, hit rate and net P&L against an out-of-sample walk-forward reference, at the configured
  false-alarm budget), the real ``diagnose``, the real ``Playbook`` (budget, cooldowns), the real
  experiment function (``experiment_worker.evaluate_candidate``, run in-process rather than in a
  subprocess) and the real gate (``promotion.evaluate_result``, trials since the last promotion).
  A passing candidate is promoted the same day and the monitor re-references on its walk-forward
  days. No rollback and no feature-drift monitor (performance alarms only).
- (b) ``never``: the bootstrap champion, never retrained.
- (c) ``every20``: the default spec refitted every 20 trading days, no gate.
- (d) ``newest``: FreqAI's policy: always the newest model, refitted every day on the last
  250 labelled days (the playbook's first recent window).

At decision date t a model knows labelled rows up to t-2 (a label needs the open of t+2... of
the row's own D+2, which is t's open at the latest). Metrics per arm: hit rate, mean log loss,
annualized Sharpe of the signal's tradable return net of the cost estimate (half the product's
typical spread plus 2 bps per unit of position change); 95 % bootstrap intervals over seeds.
Also: detection delay (first alarm minus the change, trading days), promotions, and false
promotions (any promotion on a market whose relation does not change: ``steady`` and the real
WTI history, where the "change" is only a date).

Usage: python bench/healing.py [--seeds 20] [--scenarios reversion_to_momentum,steady,wti]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra_engine.agent.core import AgentConfig  # noqa: E402
from hydra_engine.agent.diagnose import DiagnosisKind, diagnose  # noqa: E402
from hydra_engine.agent.drift import CALENDAR_PREFIXES, PerformanceMonitor, RealizedOutcome  # noqa: E402
from hydra_engine.agent.experiment_worker import evaluate_candidate  # noqa: E402
from hydra_engine.agent.hypotheses import Playbook  # noqa: E402
from hydra_engine.agent.promotion import evaluate_result  # noqa: E402
from hydra_engine.agent.thresholds import FalseAlarmBudget  # noqa: E402
from hydra_engine.model.baseline import BaselineModel, ModelSpec  # noqa: E402
from hydra_engine.model.features import build_features, make_labels, tradable_returns  # noqa: E402
from hydra_engine.model.walk_forward import walk_forward_evaluate  # noqa: E402
from hydra_engine.sim.catalog import DEFAULT_PRODUCTS  # noqa: E402
from hydra_engine.sim.scenarios import DEMO_CHANGE_OFFSET_DAYS  # noqa: E402
from hydra_engine.sim.universe import build_universe  # noqa: E402

EVAL_DAYS = 120
LEAD_DAYS = DEMO_CHANGE_OFFSET_DAYS
"""Trading days between the bootstrap and the change (the default demo's geometry)."""
ARMS = ("hydra", "never", "every20", "newest")
NEWEST_WINDOW = 250
RETRAIN_EVERY = 20
_END = dt.date(2020, 12, 31)
EVIDENCE_SINCE_ALARM = True
"""Pass the episode's first alarm date to the experiment (``evidence_since``), as the agent does."""


@dataclass(frozen=True, slots=True, eq=False)
class MarketData:
    """One market's labelled days and the ground truth's change date."""

    label: str
    seed: int
    symbol: str
    change: pd.Timestamp
    changes: bool
    """False where nothing changes (``steady``, WTI): any promotion there is a false one."""
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
        info = u.scenario("CL")
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
    return MarketData(scenario, seed, symbol, change, changes, f.loc[idx], y.loc[idx], r.loc[idx], cost_bps(symbol))


@dataclass(slots=True)
class ArmResult:
    """One arm's out-of-sample days after the change, plus the agent's events."""

    p_up: np.ndarray
    labels: np.ndarray
    net: np.ndarray
    alarms: list[int] = field(default_factory=list)
    """Positions (in trading days relative to the change) of performance alarms."""
    promotions: list[int] = field(default_factory=list)
    experiments: int = 0
    events: list[tuple[int, str, bool, str]] = field(default_factory=list)
    """(day relative to the change, hypothesis key, passed, the gate's reasons)."""

    def metrics(self) -> dict[str, float]:
        p = np.clip(self.p_up, 1e-6, 1 - 1e-6)
        y = self.labels
        sd = float(self.net.std(ddof=1))
        return {"hit": float(((p > 0.5) == (y == 1)).mean()),
                "log_loss": float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()),
                "sharpe": float(self.net.mean() / sd * math.sqrt(252)) if sd > 0 else 0.0}


def _fit(spec: ModelSpec, d: MarketData, t: int) -> BaselineModel:
    """Fit on the rows known at decision position ``t`` (labels up to t-2)."""
    return BaselineModel(spec).fit(d.features.iloc[: t - 1], d.labels.iloc[: t - 1])


def _net(p: np.ndarray, ret: np.ndarray, cost: float, prev: float) -> np.ndarray:
    pos = np.where(p > 0.5, 1.0, -1.0)
    change = np.abs(np.diff(np.concatenate(([prev], pos))))
    return pos * ret - change * cost * 1e-4


def _scored(d: MarketData, p: np.ndarray, lo: int) -> ArmResult:
    hi = lo + len(p)
    return ArmResult(p, d.labels.iloc[lo:hi].to_numpy(), _net(p, d.returns.iloc[lo:hi].to_numpy(), d.cost_bps, 0.0))


def run_static_arms(d: MarketData, spec: ModelSpec) -> dict[str, ArmResult]:
    """(b), (c) and (d): no gate, no monitor."""
    c = int(d.features.index.searchsorted(d.change))
    t0, hi = c - LEAD_DAYS, c + EVAL_DAYS
    x = d.features
    boot = _fit(spec, d, t0)
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


def run_agent_arm(d: MarketData, config: AgentConfig, work: Path) -> ArmResult:
    """(a): the agent's monitor, diagnosis, playbook, experiment function and gate, day by day."""
    spec = ModelSpec.from_dict(config.default_spec)
    c = int(d.features.index.searchsorted(d.change))
    t0, hi = c - LEAD_DAYS, c + EVAL_DAYS
    x, y, r = d.features, d.labels, d.returns
    champion = _fit(spec, d, t0)
    champ_dir = champion.save(work / "champion-0")
    ref = walk_forward_evaluate(spec, x.iloc[: t0 - 1], y.iloc[: t0 - 1], r.iloc[: t0 - 1], d.cost_bps,
                                n_splits=config.wf_splits, test_window=config.wf_test_window, min_train=config.wf_min_train)
    cols = [f for f in spec.features if not f.startswith(CALENDAR_PREFIXES)]
    per_stream = FalseAlarmBudget.per_feature(config.alarms_per_1000_days_per_stream, len(cols) + len(PerformanceMonitor.METRICS)).per_stream

    def monitor_from(daily_ll: Any, daily_hit: Any, daily_ret: Any) -> PerformanceMonitor:
        mon = PerformanceMonitor(per_stream)
        mon.set_reference(daily_ll, daily_hit, daily_ret)
        return mon

    monitor = monitor_from(ref.oos["log_loss"], ref.oos["hit"], ref.oos["net_return"])
    playbook = Playbook(config.playbook)
    findings: list[Any] = []
    trials, n_exp, version = 0, 0, 0
    p_eval = np.empty(hi - c)
    alarms: list[int] = []
    promotions: list[int] = []
    events: list[tuple[int, str, bool, str]] = []
    prev_pos = 0.0
    for t in range(t0, hi):
        day = x.index[t].date()
        # Yesterday's-but-one outcome is realized today: feed the monitor (net of the cost estimate).
        k = t - 2
        if k >= t0:
            p_k = float(champion.predict_proba(x.iloc[k : k + 1])[0])
            pos = 1.0 if p_k > 0.5 else -1.0
            net = pos * float(r.iloc[k]) - abs(pos - prev_pos) * d.cost_bps * 1e-4
            prev_pos = pos
            new = monitor.update(RealizedOutcome(str(x.index[k].date()), p_k, int(y.iloc[k]), net))
            if new:
                alarms.append(t - c)
                findings.extend(new)
        recent = [f for f in findings if (day - dt.date.fromisoformat(f.date[:10])).days <= config.findings_lookback_days]
        if recent:
            diag = diagnose(recent)
            if diag.kind not in (DiagnosisKind.NONE, DiagnosisKind.DATA_QUALITY):
                chosen, _ = playbook.propose(diag, champion.spec, day)
                inputs = {"features": x.iloc[: t - 1], "labels": y.iloc[: t - 1], "returns": r.iloc[: t - 1]}
                for h in chosen:
                    n_exp += 1
                    trials += 1
                    params = {"candidate_spec": h.apply(champion.spec.to_dict()), "champion_model_dir": str(champ_dir),
                              "n_splits": config.wf_splits, "test_window": config.wf_test_window,
                              "min_train": config.wf_min_train, "label_horizon": 1, "cost_bps": d.cost_bps}
                    if EVIDENCE_SINCE_ALARM:
                        params["evidence_since"] = min(f.date[:10] for f in findings)
                    res = evaluate_candidate(params, inputs, work / f"exp-{n_exp}")
                    ev = evaluate_result(f"exp-{n_exp}", res, trials, None, config.gate)
                    playbook.record(h.key, "accepted" if ev.passed else "rejected", day)
                    events.append((t - c, h.key, ev.passed, "; ".join(ev.gate.reasons) if ev.gate else str(ev.error)))
                    if ev.passed:
                        version += 1
                        champion = BaselineModel.load(res["model_dir"])
                        champ_dir = Path(res["model_dir"])
                        daily = res["daily"]
                        monitor = monitor_from(daily["candidate_log_loss"], daily["candidate_hit"], daily["candidate_return"])
                        findings, trials = [], 0
                        promotions.append(t - c)
                        break
        if t >= c:
            p_eval[t - c] = champion.predict_proba(x.iloc[t : t + 1])[0]
    out = _scored(d, p_eval, c)
    out.alarms, out.promotions, out.experiments, out.events = alarms, promotions, n_exp, events
    return out


def run_one(seed: int, scenario: str) -> dict[str, Any]:
    """Every arm on one (seed, scenario); returns plain numbers (picklable for a process pool)."""
    logging.disable(logging.WARNING)
    _quiet()
    config = AgentConfig()
    d = market_data(seed, scenario)
    spec = ModelSpec.from_dict(config.default_spec)
    arms = run_static_arms(d, spec)
    with tempfile.TemporaryDirectory() as tmp:
        arms["hydra"] = run_agent_arm(d, config, Path(tmp))
    a = arms["hydra"]
    return {"seed": seed, "scenario": scenario, "changes": d.changes, "metrics": {k: v.metrics() for k, v in arms.items()},
            "alarms": a.alarms, "promotions": a.promotions, "experiments": a.experiments, "events": a.events,
            "daily_net": {k: v.net.tolist() for k, v in arms.items()}}


def _quiet() -> None:
    import structlog

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
        s: dict[str, Any] = {"n_seeds": len(rs), "arms": {}}
        for arm in ARMS:
            s["arms"][arm] = {m: (float(np.mean(v)), *bootstrap_ci(np.asarray(v)))
                              for m in ("hit", "log_loss", "sharpe")
                              for v in [[r["metrics"][arm][m] for r in rs]]}
        first_alarm = [min([a for a in r["alarms"] if a >= 0], default=None) for r in rs]
        detected = [a for a in first_alarm if a is not None]
        s["detected"] = len(detected)
        s["delay_median"] = float(np.median(detected)) if detected else None
        s["alarms_before_change"] = sum(sum(1 for a in r["alarms"] if a < 0) for r in rs)
        s["promoted_seeds"] = sum(1 for r in rs if r["promotions"])
        s["promotion_day_median"] = float(np.median([r["promotions"][0] for r in rs if r["promotions"]])) if s["promoted_seeds"] else None
        s["false_promotions"] = sum(len([p for p in r["promotions"] if p < 0 or not r["changes"]]) for r in rs)
        s["experiments"] = sum(r["experiments"] for r in rs)
        s["hydra_behind_never_ll"] = sum(1 for r in rs if r["metrics"]["hydra"]["log_loss"] > r["metrics"]["never"]["log_loss"] + 0.01)
        out[scen] = s
    return out


def run(seeds: list[int], scenarios: list[str], workers: int = 2) -> list[dict[str, Any]]:
    jobs = [(s, sc) for sc in scenarios for s in seeds]
    if workers <= 1:
        return [run_one(s, sc) for s, sc in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_one, *zip(*jobs)))


def print_table(summary: dict[str, dict[str, Any]]) -> None:
    for scen, s in summary.items():
        print(f"\n{scen}: {s['n_seeds']} seeds, out of sample over the {EVAL_DAYS} trading days after the change "
              f"(95 % bootstrap CI over seeds)")
        print(f"{'arm':<9} {'hit rate':>22} {'log loss':>24} {'net Sharpe':>22}")
        for arm, m in s["arms"].items():
            cell = lambda v, f: f"{v[0]:{f}} [{v[1]:{f}}, {v[2]:{f}}]"  # noqa: E731
            print(f"{arm:<9} {cell(m['hit'], '.3f'):>22} {cell(m['log_loss'], '.4f'):>24} {cell(m['sharpe'], '.2f'):>22}")
        delay = "-" if s["delay_median"] is None else f"{s['delay_median']:.0f}"
        prom = "-" if s["promotion_day_median"] is None else f"{s['promotion_day_median']:.0f}"
        print(f"hydra: detected on {s['detected']}/{s['n_seeds']} seeds (median delay {delay} trading days), "
              f"{s['alarms_before_change']} alarms before the change, {s['experiments']} experiments, "
              f"promoted on {s['promoted_seeds']} seeds (median day {prom} after the change), "
              f"false promotions {s['false_promotions']}, log loss behind 'never' by > 0.01 on {s['hydra_behind_never_ll']} seeds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--scenarios", default="reversion_to_momentum,momentum_flip,steady,wti")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    t0 = time.perf_counter()
    rows = run(list(range(a.seeds)), a.scenarios.split(","), a.workers)
    print_table(summarize(rows))
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
