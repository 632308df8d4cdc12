"""The soak: weeks of paper trading with faults and kills, played in minutes and checked by code.

``plan`` says what happens (markets, dates, faults, kills), ``runner`` makes it happen with real
processes (an external ``hydra-tui sim`` and the headless engine in broker time), ``checks`` reads the
exchange's record and the engine's store afterwards, ``report`` prints the plan's gate checklist.
``bench/soak.py`` is the command; the test suite runs a short form.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from hydra_tui.soak.checks import gather, run_checks
from hydra_tui.soak.plan import SoakPlan
from hydra_tui.soak.report import SoakReport, build_report
from hydra_tui.soak.runner import SoakRun, run_soak


def soak(plan: SoakPlan, work: Path, progress: Callable[[str], None] | None = None) -> tuple[SoakRun, SoakReport]:
    """Run ``plan`` in ``work``, then check and report (blocking)."""
    run = asyncio.run(run_soak(plan, work, progress))
    facts = gather(run)
    return run, build_report(facts, run_checks(facts))


__all__ = ["SoakPlan", "SoakReport", "SoakRun", "soak"]
