"""What a soak does: its markets and dates, the exchange's faults, and when the engine is killed.

Everything is derived from the plan and its seed, so a soak is repeatable: the same fault spec (the
exchange's faults are themselves deterministic per seed), the same kinds of kill in the same order.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from zoneinfo import ZoneInfo

from hydra_engine.markets import CATALOG, is_trading_day

NEW_YORK = ZoneInfo("America/New_York")

FAULT_KINDS = ("drop", "restart", "notice", "pacing", "reject", "delay_ack", "delay_fill", "dup_exec",
               "cancel_race", "slow_connect", "correct")
"""Every kind the embedded exchange injects (hydra_engine/sim/FAULTS.md); each must fire."""


def fault_kind(item: str) -> str:
    """``restart@t=...:down=1`` -> ``restart``; ``rate:drop=0.01`` -> ``drop``."""
    if item.startswith("rate:"):
        return item[5:].split("=", 1)[0]
    return item.split("@", 1)[0]


KILL_PATTERNS: dict[str, str] = {
    "mid-order": r"event='broker\.order_sent'",
    "mid-journal": r"event='order\.fill_journalled'",
    "mid-experiment": r"event='experiment\.started'",
    "during-reconnect": r"event='broker\.(connection_lost|disconnected)'",
    "random": "",
}
"""Where a kill lands: right after the engine logs one of these (``random``: at a random moment)."""


@dataclass(frozen=True, slots=True)
class KillMoment:
    kind: str
    pattern: str
    delay_s: float
    """Real seconds after the pattern's line (or, for ``random``, after the previous restart)."""


DEFAULT_SPEED = 6000.0
"""Simulated seconds per real second: 28 trading days in about ten minutes of wall time."""
DEFAULT_START = dt.date(2018, 6, 18)
"""The soak's window: the default universe's ZO relation flips on 2018-03-15, the agent's drift
episode opens early in April, and its evidence since the alarm is enough for an experiment near the
end of June: alarms, the experiment, the promotion and the healed champion trading all fall inside
the 28 days from here (the days before are played lock-step first: ``warmup``)."""
UNIVERSE_START = dt.date(2018, 1, 2)
"""Where the default universe's clock starts (the warm-up plays from here to the window)."""


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """A soak: ``days`` trading days of ``markets`` from ``start`` on an external exchange at ``speed``."""

    days: int = 28
    markets: tuple[str, ...] = ("CL", "ZO", "ZR")
    start: dt.date = DEFAULT_START
    """First trading day; the default universe's ZO relation flips on 2018-03-15 (the healing market)."""
    speed: float = DEFAULT_SPEED
    """Simulated seconds per real second."""
    seed: int = 7
    kills: int = 20
    exchange_restarts: int = 2
    clean_restarts: int = 1
    """Engine stops by SIGTERM right after an order goes out (its working orders are cancelled: the
    exchange's cancel races happen there), each followed by a start."""
    gateway_restart: dt.time = dt.time(23, 50)
    """The daily gateway restart, New York time (inside the engine's default restart window 23:45-00:05)."""
    restart_down_s: float = 0.3
    """Real seconds the gateway refuses connections at each restart."""
    settings: tuple[str, ...] = field(default=())
    """Extra ``--set`` overrides for the engine, after the soak's own settings file (``settings_toml``)."""
    warmup: bool = True
    """Play the trading days from the universe's start to ``start`` lock-step first (``hydra-tui
    replay`` on the embedded exchange, fast and deterministic), then continue the same account and
    store on the external exchange for the window: the engine arrives with its history, its champions
    and any drift episode already open, as a real deployment would."""

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days = {self.days}: must be 1 or more")
        unknown = [m for m in self.markets if m not in CATALOG]
        if unknown:
            raise ValueError(f"markets {unknown}: not in the catalogue ({', '.join(sorted(CATALOG))})")
        if not 10 <= self.speed <= 100_000:
            raise ValueError(f"speed = {self.speed}: must be between 10 and 100000")

    def warmup_days(self) -> int:
        """Trading days the warm-up plays (from the universe's start to the day before ``start``)."""
        if not self.warmup or self.start <= UNIVERSE_START:
            return 0
        markets = [CATALOG[m] for m in self.markets]
        n, d = 0, UNIVERSE_START
        while d < self.start:
            n += any(is_trading_day(m, d) for m in markets)
            d += dt.timedelta(days=1)
        return n

    def trading_days(self) -> list[dt.date]:
        """The soak's trading days: days on which any of its markets trades, from ``start``."""
        markets = [CATALOG[m] for m in self.markets]
        out: list[dt.date] = []
        d = self.start
        while len(out) < self.days:
            if any(is_trading_day(m, d) for m in markets):
                out.append(d)
            d += dt.timedelta(days=1)
        return out

    @property
    def clock_start(self) -> dt.datetime:
        """The exchange starts at noon UTC of the first day (before any market's decision)."""
        return dt.datetime.combine(self.start, dt.time(12, 0), tzinfo=dt.timezone.utc)

    @property
    def clock_end(self) -> dt.datetime:
        """The soak ends once the last day's decisions are made and its orders had their session."""
        last = self.trading_days()[-1]
        return dt.datetime.combine(last + dt.timedelta(days=1), dt.time(23, 0), tzinfo=dt.timezone.utc)

    def fault_spec(self) -> str:
        """A gateway restart every simulated day, plus every kind of fault at spread-out counts."""
        items = []
        d = self.start + dt.timedelta(days=1)
        while d <= self.clock_end.date():
            if d.weekday() < 5:
                local = dt.datetime.combine(d - dt.timedelta(days=1), self.gateway_restart, tzinfo=NEW_YORK)
                at = local.astimezone(dt.timezone.utc)
                items.append(f"restart@t={at:%Y-%m-%dT%H:%M}:down={self.restart_down_s:g}")
            d += dt.timedelta(days=1)
        scale = max(1, self.days // 28)
        for n in (3, 17, 41):
            items.append(f"drop@order={n * scale}")
        for n in (2, 9, 21):
            items.append(f"drop@fill={n * scale}")
        items += [f"drop@hist={12 * scale}", f"drop@cancel={4 * scale}"]
        for n, code in ((6, 1100), (15, 1101), (27, 1102)):
            items.append(f"notice@order={n * scale}:{code}")
        items += [f"notice@fill={5 * scale}:2103", f"notice@fill={13 * scale}:2104"]
        items += [f"pacing@hist={n * scale}" for n in (7, 25, 48)]
        items += [f"reject@order={n * scale}" for n in (11, 33)]
        items += [f"delay_ack@order={n * scale}:s=0.5" for n in (8, 23)]
        items += [f"delay_fill@fill={n * scale}:s=0.5" for n in (4, 16)]
        items += [f"dup_exec@fill={n * scale}" for n in (3, 11, 19)]
        items += [f"cancel_race@order={n * scale}" for n in (10, 36)]  # each holds an order for its cancel
        items += [f"correct@fill={n * scale}" for n in (6, 14)]
        items += [f"slow_connect@connect={n * scale}:s=0.5" for n in (3, 14)]
        items += [f"restart@order={30 * scale}:down=0.5", f"restart@fill={24 * scale}:down=0.5"]
        return ";".join(items)

    def fired_kinds(self, exchange_state: dict) -> Counter[str]:
        """How many of this plan's faults fired, by kind, from the exchange's saved state (the
        exchange numbers its rules in the spec's order)."""
        items = self.fault_spec().split(";")
        fired = exchange_state.get("faults", {}).get("fired_rules", [])
        return Counter(fault_kind(items[int(i)]) for i in fired if 0 <= int(i) < len(items))

    def kill_schedule(self) -> list[KillMoment]:
        """``kills`` moments, cycling through the kinds so each is represented."""
        rng = random.Random(self.seed * 7919 + self.days)
        kinds = list(KILL_PATTERNS)
        out = []
        for i in range(self.kills):
            kind = kinds[i % len(kinds)]
            delay = rng.uniform(0.0, 0.4) if kind != "random" else rng.uniform(1.0, 8.0)
            out.append(KillMoment(kind, KILL_PATTERNS[kind], delay))
        return out

    def settings_toml(self, work: str) -> str:
        """The engine's settings for the soak: its markets, an autonomous agent (nobody approves during
        a soak), alerts appended to ``alerts.jsonl`` in ``work`` by a small command, a fast heartbeat."""
        markets = ", ".join(f'"{m}"' for m in self.markets)
        sink = (f"import sys, pathlib; p = pathlib.Path({str(work)!r}) / 'alerts.jsonl'; "
                "p.open('a').write(sys.stdin.read().strip() + '\\n')")
        return (f"markets = [{markets}]\n\n[broker]\nhost = \"127.0.0.1\"\nclient_id = 1\n\n"
                f"[agent]\ninitial_autonomy = \"autonomous\"\n\n"
                f"[alerts]\ncommand = [{json.dumps(sys.executable)}, \"-c\", {json.dumps(sink)}]\nmin_interval_s = 1.0\n\n"
                f"[heartbeat]\ninterval_s = 5.0\n")
