"""Automatic rollback with hysteresis: a new champion that trails its predecessor is undone.

After a promotion the agent keeps scoring the predecessor on the same realized days (a shadow).
The trailing mean of (new - predecessor) daily log loss over ``window_days`` is compared with a
hysteresis band: above ``enter_margin`` the bad streak grows, below ``exit_margin`` it resets,
in between it holds. ``patience_days`` consecutive bad days trigger a rollback; after any
rollback (automatic or manual) no automatic rollback or promotion happens for ``cooldown_days``.
The watch ends (the new champion is trusted) after ``watch_days`` without a rollback.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True, slots=True)
class RollbackConfig:
    patience_days: int = 10
    window_days: int = 20
    min_days: int = 10
    """Realized days before a verdict is possible."""
    enter_margin: float = 0.01
    """Trailing mean loss excess (nats/day) above which a day counts as bad."""
    exit_margin: float = 0.0
    """Below this the bad streak resets."""
    cooldown_days: int = 20
    watch_days: int = 120

    def __post_init__(self) -> None:
        if self.patience_days < 1 or self.window_days < 1 or self.min_days < 1:
            raise ValueError("rollback: patience_days, window_days and min_days must be >= 1")
        if self.exit_margin > self.enter_margin:
            raise ValueError(f"rollback: exit_margin {self.exit_margin} must be <= enter_margin {self.enter_margin}")
        if self.cooldown_days < 0 or self.watch_days < 1:
            raise ValueError("rollback: cooldown_days must be >= 0 and watch_days >= 1")


@dataclass(frozen=True, slots=True)
class RollbackVerdict:
    """Why the monitor wants the predecessor back."""

    new_version: str
    predecessor: str
    trailing_excess_loss: float
    """Mean (new - predecessor) log loss over the trailing window, nats per day."""
    bad_streak: int
    days_watched: int

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


class RollbackMonitor:
    """Watches the newest champion against its predecessor; state round-trips through dicts."""

    def __init__(self, config: RollbackConfig | None = None, state: Mapping[str, Any] | None = None) -> None:
        self.config = config or RollbackConfig()
        s = dict(state or {})
        self.new_version: str | None = s.get("new_version")
        self.predecessor: str | None = s.get("predecessor")
        self.diffs: list[float] = list(s.get("diffs", []))
        self.days_watched: int = int(s.get("days_watched", 0))
        self.bad_streak: int = int(s.get("bad_streak", 0))
        self.cooldown_until: str | None = s.get("cooldown_until")
        self.last_date: str | None = s.get("last_date")

    @property
    def watching(self) -> bool:
        return self.new_version is not None and self.predecessor is not None

    def start_watch(self, new_version: str, predecessor: str | None) -> None:
        self.new_version, self.predecessor = new_version, predecessor
        self.diffs, self.days_watched, self.bad_streak, self.last_date = [], 0, 0, None

    def stop_watch(self) -> None:
        self.new_version = self.predecessor = None
        self.diffs, self.days_watched, self.bad_streak = [], 0, 0

    def in_cooldown(self, today: dt.date) -> bool:
        return self.cooldown_until is not None and today < dt.date.fromisoformat(self.cooldown_until)

    def note_rollback(self, today: dt.date) -> None:
        """Any rollback (automatic or manual) ends the watch and starts the cooldown."""
        self.stop_watch()
        self.cooldown_until = (today + dt.timedelta(days=self.config.cooldown_days)).isoformat()

    def trailing_excess(self) -> float:
        if not self.diffs:
            return 0.0
        return float(np.mean(self.diffs[-self.config.window_days :]))

    def update(self, date: str, new_loss: float, predecessor_loss: float) -> RollbackVerdict | None:
        """Feed one realized day (idempotent per date); returns a verdict when a rollback is due."""
        if not self.watching or date == self.last_date:
            return None
        if not (np.isfinite(new_loss) and np.isfinite(predecessor_loss)):
            return None
        self.last_date = date
        self.diffs.append(float(new_loss - predecessor_loss))
        self.diffs = self.diffs[-self.config.window_days :]
        self.days_watched += 1
        excess = self.trailing_excess()
        if self.days_watched >= self.config.min_days:
            if excess > self.config.enter_margin:
                self.bad_streak += 1
            elif excess < self.config.exit_margin:
                self.bad_streak = 0
        if self.bad_streak >= self.config.patience_days:
            assert self.new_version is not None and self.predecessor is not None
            return RollbackVerdict(self.new_version, self.predecessor, excess, self.bad_streak, self.days_watched)
        if self.days_watched >= self.config.watch_days:
            self.stop_watch()
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "new_version": self.new_version,
            "predecessor": self.predecessor,
            "diffs": self.diffs,
            "days_watched": self.days_watched,
            "bad_streak": self.bad_streak,
            "cooldown_until": self.cooldown_until,
            "last_date": self.last_date,
        }
