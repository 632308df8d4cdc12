"""The soak's short form (issue 10): 5 trading days of 3 markets on an external ``hydra-tui sim``
with a gateway restart every simulated day and every other kind of fault the days reach, 3 SIGKILLs
of the engine and a restart of the exchange from its state file; the build fails on any lost or
duplicated fill or order, a position the journal does not explain, a decision neither run nor
skipped with a reason, or a process that did not recover. ``bench/soak.py`` is the 28-day form."""

from __future__ import annotations

import pytest

from hydra_tui.soak import SoakPlan, soak
from hydra_tui.soak.checks import gather

pytestmark = pytest.mark.timeout(300)

MUST_PASS = ("every fill journalled exactly once", "no order sent twice", "positions agree with the exchange",
             "no limit breached", "every decision ran once or was skipped with a reason", "zero unrecoverable errors",
             "memory bounded")


def test_five_days_with_faults_kills_and_an_exchange_restart(tmp_path) -> None:
    plan = SoakPlan(days=5, kills=3, exchange_restarts=1, speed=8000.0)
    run, report = soak(plan, tmp_path / "soak")
    checks = {c.name: c for c in report.checks}
    failed = [f"{name}: {checks[name].detail}; {list(checks[name].problems)[:5]}" for name in MUST_PASS
              if not checks[name].passed]
    assert not failed, report.text()
    assert len(run.kills) == 3 and all(k.exit_code == -9 for k in run.kills)
    assert len(run.exchange_restarts) == 1
    facts = gather(run)
    assert sum(facts.faults_fired.values()) >= 10, facts.faults_fired
    assert facts.exchange_executions, "the soak traded nothing: nothing was checked"
    assert run.wall_s < 180, f"the short soak took {run.wall_s:.0f} s"
