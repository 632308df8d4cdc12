"""False alarms where nothing changes, in the real engine: alarm days, findings and experiments per 1000 days.

For each seed, the real ``Engine`` on the embedded exchange plays ``--days`` trading days in
lock-step (what ``hydra-tui replay --days N --seed S`` runs) with one market whose scenario plants no
change (MWE, priced by ``steady``, by default), the agent autonomous and its experiments waited for.
The agent's journal then gives the alarm days (a day whose observation raised any alarm), the
findings (one per stream that crossed its threshold), the experiments by outcome, promotions and
de-risks. The totals are set against the configured budget: ``agent.alarms_per_1000_days_per_stream``
times the monitored streams (the champion's non-calendar features plus three performance metrics),
with a 95 % Poisson interval on the alarm days.

Usage: python bench/false_alarms.py [--seeds 24] [--first-seed 0] [--days 252] [--market MWE]
                                    [--workers 2] [--set agent.reference_days=1000 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import healing  # noqa: E402

from hydra_engine.config import load_settings, parse_override_value  # noqa: E402
from hydra_engine.engine import Engine  # noqa: E402


@dataclass
class SeedRun:
    seed: int
    days: int
    alarm_days: int
    findings: int
    streams: int
    budget_per_stream: float
    experiments: Counter[str] = field(default_factory=Counter)
    promotions: int = 0
    derisks: int = 0
    wall_s: float = 0.0


async def _play(seed: int, days: int, market: str, overrides: dict[str, Any]) -> SeedRun:
    t0 = time.perf_counter()
    settings = load_settings(None, {"markets": [market], "agent.initial_autonomy": "autonomous", **overrides})
    with tempfile.TemporaryDirectory(prefix="hydra-false-alarms-") as data_dir:
        engine = Engine(settings, data_dir=data_dir, seed=seed)
        await engine.start()
        try:
            info = engine.exchange.universe.scenario(market) if engine.exchange is not None else None
            if info is not None and info.change_dates:
                raise ValueError(f"{market}'s scenario {info.name!r} changes on {info.change_dates[0]}: "
                                 "pick a market whose scenario plants no change (MWE, or one set to 'steady')")
            report = await engine.run_days(days)
            await engine.agent.wait_background(600)
            entries = [e for e in await engine.agent.journal.query(limit=1_000_000) if e.market == market]
            agent = engine.agent.markets[market]
            streams = (len(agent.drift.features) if agent.drift is not None else 0) + 3
            alarms = [e for e in entries if e.entry_type == "observation" and e.outcome == "alarm"]
            return SeedRun(
                seed=seed,
                days=report.days,
                alarm_days=len({e.trading_date for e in alarms}),
                findings=sum(len((e.payload or {}).get("findings") or []) for e in alarms),
                streams=streams,
                budget_per_stream=agent.config.alarms_per_1000_days_per_stream,
                experiments=Counter(e.outcome for e in entries if e.entry_type == "experiment"),
                promotions=sum(1 for e in entries if e.entry_type == "decision" and e.outcome == "promoted"),
                derisks=sum(1 for e in entries if e.entry_type == "decision" and e.outcome == "derisk"),
                wall_s=time.perf_counter() - t0,
            )
        finally:
            await engine.stop()


def run_seed(args: tuple[int, int, str, dict[str, Any]]) -> SeedRun:
    healing._quiet()
    return asyncio.run(_play(*args))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=24)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--days", type=int, default=252)
    ap.add_argument("--market", default="MWE")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a settings override, as hydra-tui --set")
    a = ap.parse_args()
    overrides: dict[str, Any] = {}
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = parse_override_value(value)
    jobs = [(s, a.days, a.market, overrides) for s in range(a.first_seed, a.first_seed + a.seeds)]
    t0 = time.perf_counter()
    print(f"{a.market}, {a.days} days a seed, seeds {a.first_seed}-{a.first_seed + a.seeds - 1}" + (f", {overrides}" if overrides else ""), flush=True)
    print(f"{'seed':>4} {'days':>5} {'alarm days':>10} {'findings':>8} {'experiments':<24} {'promoted':>8} {'de-risks':>8}", flush=True)
    runs: list[SeedRun] = []
    with ProcessPoolExecutor(max_workers=max(1, a.workers)) as pool:
        try:
            for r in pool.map(run_seed, jobs):
                runs.append(r)
                exps = ", ".join(f"{k} {v}" for k, v in sorted(r.experiments.items())) or "-"
                print(f"{r.seed:>4} {r.days:>5} {r.alarm_days:>10} {r.findings:>8} {exps:<24} {r.promotions:>8} {r.derisks:>8}", flush=True)
        except (ValueError, KeyError) as exc:  # a market that changes, or one not in the universe
            raise SystemExit(f"false_alarms: {exc}") from None
    days = sum(r.days for r in runs)
    alarm_days = sum(r.alarm_days for r in runs)
    findings = sum(r.findings for r in runs)
    experiments = sum(sum(r.experiments.values()) for r in runs)
    lo = stats.chi2.ppf(0.025, 2 * alarm_days) / 2 if alarm_days else 0.0
    hi = stats.chi2.ppf(0.975, 2 * alarm_days + 2) / 2
    budget = max(r.streams * r.budget_per_stream for r in runs)
    per_k = 1000.0 / days
    print()
    print(f"{days} days: alarm days {alarm_days} = {alarm_days * per_k:.2f} per 1000 (95 % Poisson {lo * per_k:.1f}-{hi * per_k:.1f}); "
          f"findings {findings} = {findings * per_k:.2f} per 1000; budget {budget:.1f} per 1000 "
          f"({max(r.streams for r in runs)} streams x {runs[0].budget_per_stream:g})")
    print(f"experiments {experiments} = {experiments * per_k:.2f} per 1000; promotions {sum(r.promotions for r in runs)}; "
          f"de-risks {sum(r.derisks for r in runs)} on {sum(1 for r in runs if r.derisks)} seed(s)")
    print(f"{len(runs)} runs in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
