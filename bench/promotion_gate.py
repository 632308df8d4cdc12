"""Promotion gate: false promotions without an edge, and power with one (seeded tables).

Synthetic edge (stated): on each out-of-sample day a hidden state has two parts, x ~ N(0,1) that
both models see and z ~ N(0,1) that only a better model can see. The market goes up with
probability sigmoid(0.5 x + 0.5 z); the day's return is +/- |N(0, 1%)| in that direction.
- champion: p = sigmoid(0.5 x + eta_c), eta_c ~ N(0, 0.3^2) (estimation noise)
- candidate: p = sigmoid(0.5 x + edge * 0.5 z + eta_k), eta_k ~ N(0, 0.3^2) independent of eta_c
With edge = 0 the two models are equally good and differ only by noise (no real edge); the
table reports how often they disagree on direction. Each trial draws N out-of-sample days,
split into 5 walk-forward windows, and applies the full gate (recency-weighted window majority,
one-sided DM-HLN on daily log loss at 5%, deflated Sharpe >= 0.95 of the candidate's signal
returns) with the given trial count (2 = one cycle's budget).

Evidence since a false alarm (the agent's path): the same two equally good models trade day after
day; the champion's realized outcomes feed the agent's real ``PerformanceMonitor`` (referenced on
its first 250 days, at the configured false-alarm budget) until it raises a (false) alarm. From the
alarm on, the agent waits for ``gate.min_oos_days`` of evidence in whole test windows of
``wf_test_window`` days, then tests one candidate (its batch) once per new window, up to 120 days
after the alarm: the comparison uses only the windows after the alarm, at the DM level the agent
spends on that look (``promotion.episode_alpha``), the deflated Sharpe the candidate's last 750 days,
with trials counted and trial Sharpes kept as the agent keeps them. A false promotion is any
candidate passing at any of those looks in the episode.

Usage: python bench/promotion_gate.py [--trials 400] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra_engine.agent.core import AgentConfig  # noqa: E402
from hydra_engine.agent.drift import PerformanceMonitor, RealizedOutcome  # noqa: E402
from hydra_engine.agent.loop import evidence_days_needed  # noqa: E402
from hydra_engine.agent.promotion import GateConfig, episode_alpha, evaluate_gate  # noqa: E402
from hydra_engine.agent.thresholds import FalseAlarmBudget  # noqa: E402

N_WINDOWS = 5
N_STREAMS = 14
"""The agent's streams on the default spec: 11 monitored features and 3 performance metrics."""


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def trial(rng: np.random.Generator, n_days: int, edge: float, n_trials: int, cfg: GateConfig) -> tuple[bool, float]:
    x, z = rng.standard_normal(n_days), rng.standard_normal(n_days)
    y = (rng.random(n_days) < sigmoid(0.5 * x + 0.5 * z)).astype(int)
    ret = np.where(y == 1, 1.0, -1.0) * np.abs(rng.normal(0, 0.01, n_days))
    p_c = sigmoid(0.5 * x + rng.normal(0, 0.3, n_days))
    p_k = sigmoid(0.5 * x + edge * 0.5 * z + rng.normal(0, 0.3, n_days))
    ll = lambda p: -(y * np.log(p) + (1 - y) * np.log(1 - p))  # noqa: E731
    l_c, l_k = ll(p_c), ll(p_k)
    w = np.array_split(np.arange(n_days), N_WINDOWS)
    r_k = np.where(p_k > 0.5, 1.0, -1.0) * ret
    d = evaluate_gate([l_k[i].mean() for i in w], [l_c[i].mean() for i in w], l_k, l_c, r_k, n_trials, cfg)
    disagree = float(np.mean((p_k > 0.5) != (p_c > 0.5)))
    return d.passed, disagree


def _day_batch(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` days of two equally good models (no edge): losses, hits and signal returns."""
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    y = (rng.random(n) < sigmoid(0.5 * x + 0.5 * z)).astype(int)
    ret = np.where(y == 1, 1.0, -1.0) * np.abs(rng.normal(0, 0.01, n))
    out = {}
    for side in ("champion", "candidate_a", "candidate_b"):
        p = sigmoid(0.5 * x + rng.normal(0, 0.3, n))
        out[f"{side}_loss"] = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        out[f"{side}_hit"] = ((p > 0.5) == (y == 1)).astype(float)
        out[f"{side}_ret"] = np.where(p > 0.5, 1.0, -1.0) * ret
    return out


def since_false_alarm_episode(rng: np.random.Generator, agent: AgentConfig, reference_days: int = 250,
                              max_days: int = 5000, horizon: int = 120) -> tuple[bool, int, list[bool]] | None:
    """One episode of the agent's evidence-since path after a false alarm; None if no alarm came.

    Returns (any promotion, number of looks, promoted at each look)."""
    days = _day_batch(rng, reference_days + max_days + horizon)
    per_stream = FalseAlarmBudget.per_feature(agent.alarms_per_1000_days_per_stream, N_STREAMS).per_stream
    mon = PerformanceMonitor(per_stream)
    ref = slice(0, reference_days)
    mon.set_reference(days["champion_loss"][ref], days["champion_hit"][ref], days["champion_ret"][ref])
    alarm = None
    for t in range(reference_days, reference_days + max_days):
        p = float(np.exp(-days["champion_loss"][t]))  # P(outcome) -> a P(up) consistent with loss and hit
        p_up = p if days["champion_hit"][t] else 1 - p
        label = 1 if (p_up >= 0.5) == bool(days["champion_hit"][t]) else 0
        if mon.update(RealizedOutcome(str(t), p_up, label, float(days["champion_ret"][t]))):
            alarm = t
            break
    if alarm is None:
        return None
    tw, need, cfg = agent.wf_test_window, evidence_days_needed(agent), agent.gate
    looks: list[bool] = []
    trials, sharpes = 0, []
    for n_after in range(need, horizon + 1, tw):
        end = alarm + n_after
        n_win = n_after // tw
        post = slice(end - n_win * tw, end)
        windows = np.repeat(np.arange(n_win), tw)
        passed = False
        look_cfg = replace(cfg, dm_alpha=episode_alpha(cfg.dm_alpha, len(looks) + 1, 1))
        for side in ("candidate_a",):
            trials += 1
            cl, bl = days[f"{side}_loss"][post], days["champion_loss"][post]
            cw = [float(cl[windows == k].mean()) for k in range(n_win)]
            bw = [float(bl[windows == k].mean()) for k in range(n_win)]
            whole = days[f"{side}_ret"][max(0, end - 750):end]
            d = evaluate_gate(cw, bw, cl, bl, whole, trials, look_cfg, sharpes or None, windows)
            if d.dsr is not None:
                sharpes.append(d.dsr.sharpe)
            passed = passed or d.passed
        looks.append(passed)
    return any(looks), len(looks), looks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--quick", action="store_true", help="100 trials per cell")
    a = ap.parse_args()
    n_trials = 100 if a.quick else a.trials
    cfg = GateConfig(min_oos_days=60)
    t0 = time.perf_counter()
    lengths = (100, 250, 500)
    print(f"\nFalse promotion with no real edge (edge = 0), {n_trials} trials per cell")
    print(f"{'OOS days':>9} {'trials/cycle':>13} {'promoted':>9} {'disagree':>9}")
    for n_days in lengths:
        for k in (1, 2, 10):
            rng = np.random.default_rng([n_days, k, 0])
            res = [trial(rng, n_days, 0.0, k, cfg) for _ in range(n_trials)]
            rate = np.mean([r[0] for r in res])
            print(f"{n_days:>9} {k:>13} {rate * 100:>8.1f}% {np.mean([r[1] for r in res]) * 100:>8.1f}%")
    edges = (0.0, 0.25, 0.5, 0.75, 1.0)
    print("\nPower: promotion rate by edge (share of the hidden signal the candidate sees) and history, 2 trials/cycle")
    print(f"{'edge':>6}" + "".join(f"{f'{n} days':>12}" for n in lengths) + f"{'disagree@250':>14}")
    for e in edges:
        row, dis = [], 0.0
        for n_days in lengths:
            rng = np.random.default_rng([n_days, int(e * 100), 1])
            res = [trial(rng, n_days, e, 2, cfg) for _ in range(n_trials)]
            row.append(np.mean([r[0] for r in res]))
            if n_days == 250:
                dis = np.mean([r[1] for r in res])
        print(f"{e:>6.2f}" + "".join(f"{v * 100:>11.1f}%" for v in row) + f"{dis * 100:>13.1f}%")
    agent = AgentConfig()
    rng = np.random.default_rng([7, 7, 7])
    episodes = []
    while len(episodes) < n_trials:
        e = since_false_alarm_episode(rng, agent)
        if e is not None:
            episodes.append(e)
    per_look = [v for e in episodes for v in e[2]]
    first = [e[2][0] for e in episodes if e[2]]
    print(f"\nEvidence since a false alarm (no edge), {len(episodes)} episodes: 1 candidate per look, one look per new "
          f"{agent.wf_test_window}-day window from {evidence_days_needed(agent)} to 120 days after the alarm "
          f"({int(np.mean([e[1] for e in episodes]))} looks)")
    print(f"{'promoted at the first look':>40} {np.mean(first) * 100:>6.1f}%")
    print(f"{'promoted per look':>40} {np.mean(per_look) * 100:>6.1f}%")
    print(f"{'promoted in the episode (any look)':>40} {np.mean([e[0] for e in episodes]) * 100:>6.1f}%")
    print(f"\nruntime {time.perf_counter() - t0:.1f} s. Goal: false promotion <= 5% over >= 200 trials with no edge "
          f"(per episode on the evidence-since path).")


if __name__ == "__main__":
    main()
