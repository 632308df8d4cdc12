"""The four-week soak: 28 trading days (``--long``: 252) of 3 markets on an external ``hydra-tui sim``
with a gateway restart every simulated day, every kind of fault, 20 SIGKILLs of the engine at chosen
moments (mid-order, mid-journal, mid-experiment, during reconnect, at random) and two restarts of the
exchange from its state file; then checks by code and the plan's gate checklist (terminal and
Markdown). Exit 0 when every check passed, 1 otherwise.

    python bench/soak.py                       # 28 days, report in soak-report.md
    python bench/soak.py --long --speed 12000  # 252 days
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from hydra_tui.soak import SoakPlan, soak
from hydra_tui.soak.plan import DEFAULT_SPEED, DEFAULT_START


def main() -> int:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--long", action="store_true", help="252 trading days")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--exchange-restarts", type=int, default=2)
    ap.add_argument("--speed", type=float, default=DEFAULT_SPEED, help="simulated seconds per real second")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--start", type=dt.date.fromisoformat, default=DEFAULT_START)
    ap.add_argument("--work", type=Path, help="keep the processes' files here (default: a temporary folder)")
    ap.add_argument("--report", type=Path, default=Path("soak-report.md"))
    args = ap.parse_args()
    plan = SoakPlan(days=252 if args.long else args.days, kills=args.kills, exchange_restarts=args.exchange_restarts,
                    speed=args.speed, seed=args.seed, start=args.start)
    work = args.work or Path(tempfile.mkdtemp(prefix="hydra-soak-"))
    t0 = time.monotonic()
    run, report = soak(plan, work, lambda line: print(line, file=sys.stderr, flush=True))
    sys.stdout.write(report.text())
    args.report.write_text(report.markdown())
    print(f"\nreport: {args.report}; processes' logs and the store: {work} ({time.monotonic() - t0:.0f} s)",
          file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
