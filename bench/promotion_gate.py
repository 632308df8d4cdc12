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

Usage: python bench/promotion_gate.py [--trials 400] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra_engine.agent.promotion import GateConfig, evaluate_gate  # noqa: E402

N_WINDOWS = 5


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
    print(f"\nruntime {time.perf_counter() - t0:.1f} s. Goal: false promotion <= 5% over >= 200 trials with no edge.")


if __name__ == "__main__":
    main()
