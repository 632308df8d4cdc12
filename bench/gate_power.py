"""The promotion gate's power on the scenarios the exchange ships: 60, 120 and 250 days after a change.

For each registered scenario (on ZO's market profile) and seed, the champion is the agent's
default spec fitted on what was known 50 trading days before the change. At N labelled days after
the change the agent's first repair, "retrain since the alarm" (the playbook's own hypothesis, with
the alarm placed on the change date: the detectors' delay is measured by bench/healing.py), is
evaluated by the experiment worker (``evaluate_candidate``, net of the product's cost estimate) and
judged by the gate (``evaluate_result``) with evidence since the alarm, at the DM level of an
episode's first look (one candidate: ``promotion.episode_alpha``). Power is the share of seeds
whose candidate passes; on ``steady`` (nothing changes) it is the false-promotion rate. A second
column set shows the gate fed the full history instead (no evidence since the alarm), as before.

Usage: python bench/gate_power.py [--seeds 20] [--days 60,120,250] [--scenarios all]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import healing  # noqa: E402

from hydra_engine.agent.core import AgentConfig  # noqa: E402
from hydra_engine.agent.diagnose import Diagnosis, DiagnosisKind  # noqa: E402
from hydra_engine.agent.experiment_worker import evaluate_candidate  # noqa: E402
from hydra_engine.agent.hypotheses import SinceAlarm, candidates_for  # noqa: E402
from hydra_engine.agent.promotion import episode_alpha, evaluate_result  # noqa: E402
from hydra_engine.model.baseline import ModelSpec  # noqa: E402
from hydra_engine.sim.scenarios import scenario_names  # noqa: E402


def run_one(seed: int, scenario: str, days: tuple[int, ...]) -> dict[str, Any]:
    healing._quiet()
    d = healing.market_data(seed, scenario)
    cfg = AgentConfig(cost_bps=d.cost_bps)
    spec = ModelSpec.from_dict(cfg.default_spec)
    x, y, r = d.features, d.labels, d.returns
    c = int(x.index.searchsorted(d.change))
    champion = healing._fit(spec, d, c - healing.LEAD_DAYS)
    since = str(x.index[c].date())
    out: dict[str, Any] = {"seed": seed, "scenario": scenario, "since": {}, "full": {}}
    with tempfile.TemporaryDirectory(prefix="gate-power-") as tmp:
        champ_dir = champion.save(Path(tmp) / "champion")
        for n in days:
            t = c + n + 2  # n labelled days after the change are known at decision t
            if t > len(x):
                continue
            rows = SinceAlarm(since, n, n // cfg.wf_test_window)
            diag = Diagnosis(DiagnosisKind.CONCEPT_DRIFT, "bench", ())
            hyp = candidates_for(diag, spec, cfg.playbook, rows)
            if not hyp or hyp[0].kind != "retrain_since_alarm":
                continue
            inputs = {"features": x.iloc[: t - 1], "labels": y.iloc[: t - 1], "returns": r.iloc[: t - 1]}
            base = {"candidate_spec": hyp[0].apply(spec.to_dict()), "champion_model_dir": str(champ_dir),
                    "n_splits": cfg.wf_splits, "test_window": cfg.wf_test_window, "min_train": cfg.wf_min_train,
                    "label_horizon": cfg.label_horizon, "cost_bps": d.cost_bps, "save_model": False}
            for mode, extra, gate in (("since", {"evidence_since": since}, replace(cfg.gate, dm_alpha=episode_alpha(cfg.gate.dm_alpha, 1, 1))),
                                      ("full", {}, cfg.gate)):
                res = evaluate_candidate(base | extra, inputs, Path(tmp) / f"{mode}-{n}")
                ev = evaluate_result(f"{mode}-{n}", res, 2, None, gate)
                out[mode][n] = bool(ev.passed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--days", default="60,120,250")
    ap.add_argument("--scenarios", default="all")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    days = tuple(int(v) for v in a.days.split(","))
    scenarios = scenario_names() if a.scenarios == "all" else a.scenarios.split(",")
    t0 = time.perf_counter()
    jobs = [(s, sc, days) for sc in scenarios for s in range(a.seeds)]
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        rows = list(pool.map(run_one, *zip(*jobs)))
    print(f"\nGate power: share of {a.seeds} seeds whose 'retrain since the alarm' passes, N labelled days after the change")
    print(f"(evidence since the alarm at the first look's DM level {episode_alpha(AgentConfig().gate.dm_alpha, 1, 1):g}; "
          f"'full history' = the gate fed every window, DM level {AgentConfig().gate.dm_alpha:g})")
    head = "".join(f"{f'{n} d':>8}" for n in days)
    print(f"{'scenario':<24}{'since the alarm':>{8 * len(days)}}   {'full history':>{8 * len(days)}}")
    print(f"{'':<24}{head}   {head}")
    def rate(rs: list[dict[str, Any]], mode: str, n: int) -> str:
        vals = [r[mode][n] for r in rs if n in r[mode]]
        return f"{np.mean(vals) * 100:>7.0f}%" if vals else f"{'-':>8}"

    for sc in scenarios:
        rs = [r for r in rows if r["scenario"] == sc]
        print(f"{sc:<24}" + "".join(rate(rs, "since", n) for n in days) + "   " + "".join(rate(rs, "full", n) for n in days))
    print(f"\n'steady' has no change: its row is the false-promotion rate. {len(rows)} runs in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
