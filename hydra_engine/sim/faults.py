"""Fault injection for the embedded exchange: a small spec, deterministic per seed.

Grammar and semantics are documented in FAULTS.md next to this file. The plan only decides *when*
a fault fires; the exchange carries it out.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, field

KINDS = (
    "drop", "restart", "notice", "pacing", "reject", "delay_ack", "delay_fill", "dup_exec",
    "cancel_race", "slow_connect", "correct",
)  # fmt: skip
TRIGGERS = {
    "order": {"drop", "restart", "reject", "delay_ack", "notice", "cancel_race"},
    "fill": {"drop", "restart", "delay_fill", "dup_exec", "notice", "correct"},
    "cancel": {"cancel_race", "drop", "restart"},
    "hist": {"pacing", "drop"},
    "connect": {"slow_connect"},
    "t": {"drop", "restart", "notice"},
}
RATE_EVENT = {
    "drop": "request", "reject": "order", "delay_ack": "order", "dup_exec": "fill", "correct": "fill",
    "delay_fill": "fill", "pacing": "hist", "cancel_race": "cancel", "slow_connect": "connect",
}  # fmt: skip
NOTICES = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2107: "HMDS data farm connection is inactive but should be available upon demand.ushmds",
    2108: "Market data farm connection is inactive but should be available upon demand.usfarm",
    2110: "Connectivity between Trader Workstation and server is broken. It will be restored automatically.",
    2157: "Sec-def data farm connection is broken:secdefil",
    2158: "Sec-def data farm connection is OK:secdefil",
}
NEEDS_TARGET = {"cancel_race"}
"""Kinds that act on what the event is about (a cancel races a fill only while the order still works):
a count rule of such a kind waits for the first event at or after its count that has a target.
On the order trigger (``cancel_race@order=N``) the target is an order that works once placed: it
rests unfilled until a cancel for it arrives, which then races a fill; the rule fires at that race,
and waits for the next working order if its resting order ends any other way (expiry)."""
DEFAULTS = {"restart": {"down": 2.0}, "delay_ack": {"s": 1.0}, "delay_fill": {"s": 1.0}, "slow_connect": {"s": 1.0}}
_ISO = re.compile(r"^t=(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?=:|$)(.*)$")


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message names the item and what is accepted."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault to carry out now."""

    kind: str
    params: dict[str, float] = field(default_factory=dict)

    def param(self, name: str) -> float:
        return self.params.get(name, DEFAULTS.get(self.kind, {}).get(name, 0.0))


@dataclass(slots=True)
class _Rule:
    kind: str
    trigger: str
    n: int = 0
    at: dt.datetime | None = None
    rate: float = 0.0
    params: dict[str, float] = field(default_factory=dict)
    fired: bool = False
    armed: bool = False
    """An order-triggered ``cancel_race`` holding its order until that order's cancel arrives."""


def _params(item: str, kind: str, pieces: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in pieces:
        if not p:
            continue
        key, _, val = p.partition("=")
        if not _:
            key, val = ("code", p) if kind == "notice" else (p, "")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            raise FaultSpecError(f"fault {item!r}: parameter {p!r} must be key=number") from None
    if kind == "notice":
        code = int(out.get("code", 0))
        if code not in NOTICES:
            raise FaultSpecError(f"fault {item!r}: notice code {code} not one of {sorted(NOTICES)}")
    for k, v in out.items():
        if k in ("down", "s") and not 0 <= v <= 3600:
            raise FaultSpecError(f"fault {item!r}: {k}={v:g} outside 0..3600 seconds")
    return out


def parse_faults(spec: str | None) -> list[_Rule]:
    rules: list[_Rule] = []
    for raw in (spec or "").split(";"):
        item = raw.strip()
        if not item:
            continue
        if item.startswith("rate:"):
            body, *rest = item[5:].split(":")
            kind, _, prob = body.partition("=")
            kind = kind.strip()
            if kind not in RATE_EVENT:
                raise FaultSpecError(f"fault {item!r}: rate kind {kind!r} not one of {sorted(RATE_EVENT)}")
            try:
                p = float(prob)
            except ValueError:
                raise FaultSpecError(f"fault {item!r}: rate {prob!r} must be a probability 0..1") from None
            if not 0 <= p <= 1:
                raise FaultSpecError(f"fault {item!r}: rate {p:g} outside 0..1")
            rules.append(_Rule(kind, "rate", rate=p, params=_params(item, kind, rest)))
            continue
        kind, at, trig = item.partition("@")
        kind = kind.strip()
        if kind not in KINDS:
            raise FaultSpecError(f"fault {item!r}: kind {kind!r} not one of {list(KINDS)}")
        if not at:
            raise FaultSpecError(f"fault {item!r}: expected KIND@TRIGGER (e.g. drop@fill=1) or rate:KIND=P")
        m = _ISO.match(trig)
        if m:
            when = dt.datetime.fromisoformat(m.group(1))
            when = when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when
            rule = _Rule(kind, "t", at=when)
            rest = m.group(2).lstrip(":").split(":") if m.group(2) else []
        else:
            head, *rest = trig.split(":")
            name, _, num = head.partition("=")
            if name not in TRIGGERS or name == "t":
                raise FaultSpecError(f"fault {item!r}: trigger {name!r} not one of order=N, fill=N, cancel=N, "
                                     "hist=N, connect=N, t=YYYY-MM-DDTHH:MM[:SS] (UTC)")  # fmt: skip
            try:
                n = int(num)
            except ValueError:
                raise FaultSpecError(f"fault {item!r}: {name}={num!r} must be a whole number >= 1") from None
            if n < 1:
                raise FaultSpecError(f"fault {item!r}: {name}={n} must be >= 1")
            rule = _Rule(kind, name, n=n)
        if kind not in TRIGGERS[rule.trigger]:
            raise FaultSpecError(f"fault {item!r}: {kind} cannot be triggered by {rule.trigger}; "
                                 f"accepted: {sorted(TRIGGERS[rule.trigger])}")  # fmt: skip
        rule.params = _params(item, kind, rest)
        rules.append(rule)
    return rules


class FaultPlan:
    """Counts events and says which faults fire; same spec and seed, same faults."""

    def __init__(self, spec: str | None = None, seed: int = 7) -> None:
        self.spec = spec or ""
        self.rules = parse_faults(spec)
        self.counts = {"order": 0, "fill": 0, "cancel": 0, "hist": 0, "connect": 0, "request": 0}
        self._rng = {k: random.Random(f"hydra-faults:{seed}:{k}") for k in KINDS}
        self.fired: list[tuple[str, str]] = []
        """(kind, why) of every fault fired, for logs and tests."""

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _event(self, event: str, has_target: bool = True) -> list[Fault]:
        if not self.rules:
            return []
        self.counts[event] += 1
        n = self.counts[event]
        out: list[Fault] = []
        for r in self.rules:
            if r.kind in NEEDS_TARGET and (not has_target or r.trigger == "order"):
                continue  # order-triggered: see ``on_order_placed``
            due = r.n == n or (r.kind in NEEDS_TARGET and r.n < n)
            if r.trigger == event and due and not r.fired:
                r.fired = True
                out.append(Fault(r.kind, dict(r.params)))
                self.fired.append((r.kind, f"{event}={n}"))
            elif r.trigger == "rate" and RATE_EVENT[r.kind] == event and self._rng[r.kind].random() < r.rate:
                out.append(Fault(r.kind, dict(r.params)))
                self.fired.append((r.kind, f"rate {event} #{n}"))
        return out

    def on_order(self) -> list[Fault]:
        return self._event("order")

    def on_order_placed(self, working: bool) -> int | None:
        """After the order counted by the last ``on_order`` was placed: the index of the rule that
        holds it unfilled until its cancel arrives (``cancel_race@order=N``), else None
        (``working``: the order now works)."""
        if not working:
            return None
        for i, r in enumerate(self.rules):
            if r.kind in NEEDS_TARGET and r.trigger == "order" and not (r.fired or r.armed) and r.n <= self.counts["order"]:
                r.armed = True
                return i
        return None

    def on_rest_raced(self, rule: int) -> None:
        """The cancel of the order ``rule`` holds arrived and raced its fill: the rule has fired."""
        r = self.rules[rule]
        r.armed, r.fired = False, True
        self.fired.append((r.kind, f"order={r.n} (its cancel)"))

    def on_rest_ended(self, rule: int) -> None:
        """The order ``rule`` held ended without a cancel (it expired): the rule waits for the next order."""
        self.rules[rule].armed = False

    def on_fill(self) -> list[Fault]:
        return self._event("fill")

    def on_cancel(self, working: bool = True) -> list[Fault]:
        """``working``: the order to cancel still works (a race with a fill is possible)."""
        return self._event("cancel", has_target=working)

    def on_hist(self) -> list[Fault]:
        return self._event("hist")

    def on_connect(self) -> list[Fault]:
        return self._event("connect")

    def on_request(self) -> list[Fault]:
        return self._event("request")

    def due(self, t0: dt.datetime, t1: dt.datetime) -> list[Fault]:
        """Time-triggered faults with t0 < at <= t1 (each fires once)."""
        out = []
        for r in self.rules:
            if r.trigger == "t" and not r.fired and r.at is not None and t0 < r.at <= t1:
                r.fired = True
                out.append(Fault(r.kind, dict(r.params)))
                self.fired.append((r.kind, f"t={r.at.isoformat()}"))
        return out

    def state(self) -> dict:
        return {"counts": dict(self.counts), "fired_rules": [i for i, r in enumerate(self.rules) if r.fired],
                "armed_rules": [i for i, r in enumerate(self.rules) if r.armed]}

    def restore(self, d: dict) -> None:
        self.counts.update({k: int(v) for k, v in d.get("counts", {}).items() if k in self.counts})
        for i in d.get("fired_rules", []):
            if 0 <= i < len(self.rules):
                self.rules[i].fired = True
        for i in d.get("armed_rules", []):
            if 0 <= i < len(self.rules):
                self.rules[i].armed = True
