"""The patience schedule: how a limit order walks from the mid to and through the touch.

An order starts at the arrival mid; at each step's elapsed time (read from the engine Clock) it is
repriced more aggressively, measured in half-spreads from the current mid (0 = mid, 1 = the touch)
plus whole ticks through the touch; when the schedule ends the order is cancelled. Every reprice
passes the risk gate again, like a new order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PatienceStep:
    """From ``after_s`` seconds after the order starts, price at this aggression."""

    after_s: float
    half_spreads: float
    """Distance from the mid toward (and past) the far touch, in half-spreads: 0 mid, 1 touch."""
    ticks_through: int = 0
    """Extra ticks beyond the level above (crossing the touch)."""


@dataclass(frozen=True, slots=True)
class PatienceSchedule:
    """Steps in time order (the first at 0 s) and when to give up (cancel), seconds."""

    steps: tuple[PatienceStep, ...]
    cancel_after_s: float

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("patience.steps must hold at least one step")
        if self.steps[0].after_s != 0:
            raise ValueError(f"patience.steps[0].after_s={self.steps[0].after_s}: the first step starts at 0")
        for i, (a, b) in enumerate(zip(self.steps, self.steps[1:], strict=False), start=1):
            if not b.after_s > a.after_s:
                raise ValueError(f"patience.steps[{i}].after_s={b.after_s} must be above {a.after_s}")
            if b.half_spreads < a.half_spreads or b.ticks_through < a.ticks_through:
                raise ValueError(f"patience.steps[{i}] must not be less aggressive than step {i - 1}")
        for i, s in enumerate(self.steps):
            if not 0 <= s.half_spreads <= 10:
                raise ValueError(f"patience.steps[{i}].half_spreads={s.half_spreads} must be in [0, 10]")
            if not 0 <= s.ticks_through <= 100:
                raise ValueError(f"patience.steps[{i}].ticks_through={s.ticks_through} must be in [0, 100]")
        if not self.cancel_after_s > self.steps[-1].after_s:
            raise ValueError(
                f"patience.cancel_after_s={self.cancel_after_s} must be above the last step ({self.steps[-1].after_s})"
            )

    @classmethod
    def default(cls) -> PatienceSchedule:
        """Mid for 2 min, half-way for 2 min, touch for 2 min, one tick through for 4 min."""
        return cls(
            steps=(
                PatienceStep(0.0, 0.0),
                PatienceStep(120.0, 0.5),
                PatienceStep(240.0, 1.0),
                PatienceStep(360.0, 1.0, 1),
            ),
            cancel_after_s=600.0,
        )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PatienceSchedule:
        """From ``{"steps": [[after_s, half_spreads, ticks_through?], ...], "cancel_after_s": x}``."""
        try:
            raw_steps: Sequence[Sequence[float]] = cfg["steps"]
            cancel = float(cfg["cancel_after_s"])
        except KeyError as exc:
            raise ValueError(f"patience: missing key {exc.args[0]!r} (needs 'steps' and 'cancel_after_s')") from None
        steps = []
        for i, row in enumerate(raw_steps):
            if not 2 <= len(row) <= 3:
                raise ValueError(f"patience.steps[{i}]={row!r}: expected [after_s, half_spreads, ticks_through?]")
            steps.append(PatienceStep(float(row[0]), float(row[1]), int(row[2]) if len(row) == 3 else 0))
        return cls(steps=tuple(steps), cancel_after_s=cancel)

    def step_at(self, elapsed_s: float) -> int:
        """Index of the step in force ``elapsed_s`` seconds after the start."""
        idx = 0
        for i, s in enumerate(self.steps):
            if elapsed_s >= s.after_s:
                idx = i
        return idx

    def next_change_s(self, elapsed_s: float) -> float:
        """Elapsed seconds of the next reprice or of the cancel."""
        for s in self.steps:
            if s.after_s > elapsed_s:
                return s.after_s
        return self.cancel_after_s


def round_to_tick(price: float, tick: float, side: str) -> float:
    """Nearest tick; a tie goes to the passive side (down for a buy, up for a sell)."""
    if not tick or tick <= 0:
        return price
    units = price / tick
    lo, hi = math.floor(units + 1e-9), math.ceil(units - 1e-9)
    if lo == hi:
        return round(lo * tick, 10)
    frac = units - lo
    if abs(frac - 0.5) < 1e-9:
        pick = lo if side == "BUY" else hi
    else:
        pick = lo if frac < 0.5 else hi
    return round(pick * tick, 10)


def limit_price(step: PatienceStep, *, side: str, bid: float, ask: float, tick: float) -> float:
    """The limit for ``step`` given the current book, on the tick grid."""
    mid = (bid + ask) / 2.0
    half = max(0.0, (ask - bid) / 2.0)
    sign = 1.0 if side == "BUY" else -1.0
    raw = mid + sign * (step.half_spreads * half + step.ticks_through * (tick or 0.0))
    return round_to_tick(raw, tick, side)
