"""Settings of the operations sections: ``[alerts]``, ``[heartbeat]`` and ``[retention]``.

Validated by ``hydra_engine.config`` like every other section (ranges in the field metadata, a bad
key or value named with its dotted key) before anything starts.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from hydra_engine.operations.alert_kinds import ALL_KINDS, AlertKind


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Section ``[alerts]``: where operator alerts go and how often.

    ``command`` is an argv list run without a shell, the alert as JSON on its stdin and in
    ``HYDRA_ALERT_*`` environment variables; ``webhook`` receives the same JSON as an HTTP POST.
    Neither set: alerts are still journalled (outcome NO_CHANNEL) and shown to the TUI."""

    command: tuple[str, ...] = ()
    webhook: str = ""
    min_interval_s: float = field(default=600.0, metadata={"range": (0.0, 86_400.0)})
    """Rate limit: at most one delivery per kind in this many seconds; the rest are journalled SUPPRESSED."""
    disconnect_after_min: float = field(default=10.0, metadata={"range": (0.01, 10_080.0)})
    """Alert when the broker has been unreachable this long (wall minutes) outside the restart window."""
    down_before_decision_min: float = field(default=10.0, metadata={"range": (0.0, 1440.0)})
    """Alert when the broker is down this long before a decision is due (0: never)."""
    kinds: tuple[str, ...] = ALL_KINDS
    """The kinds to raise (``hydra_engine.operations.alert_kinds``); the others are ignored."""
    command_timeout_s: float = field(default=30.0, metadata={"range": (0.5, 600.0)})
    webhook_timeout_s: float = field(default=10.0, metadata={"range": (0.5, 120.0)})

    def __post_init__(self) -> None:
        if self.command:
            if any(not isinstance(a, str) or not a for a in self.command):
                raise ValueError(f"alerts.command = {list(self.command)!r}: every item must be a non-empty string")
            if len(self.command) == 1 and any(c.isspace() for c in self.command[0]):
                raise ValueError(
                    f"alerts.command = {self.command[0]!r}: give the program and its arguments as a list, "
                    'e.g. ["notify-send", "HYDRA"]; it is run without a shell')
        if self.webhook:
            url = urllib.parse.urlsplit(self.webhook)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"alerts.webhook = {self.webhook!r}: must be an http:// or https:// URL with a host")
        known = {k.value for k in AlertKind}
        for k in self.kinds:
            if k not in known:
                raise ValueError(f"alerts.kinds = {list(self.kinds)!r}: {k!r} is not an alert kind; "
                                 f"known kinds: {', '.join(sorted(known))}")


@dataclass(frozen=True, slots=True)
class HeartbeatSettings:
    """Section ``[heartbeat]``: the file monitoring reads to know the engine is alive."""

    enabled: bool = True
    interval_s: float = field(default=60.0, metadata={"range": (0.05, 3600.0)})
    """Wall seconds between two rewrites of the file."""
    file: Path | None = None
    """None: ``heartbeat.json`` in the store directory."""


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """Section ``[retention]``: what the daily housekeeping after the last decision may delete.

    For each kind of file the newest ``*_keep`` are always kept; of the rest, those older than
    ``*_max_age_days`` are deleted. A market's champion and its predecessor are never touched, nor
    a candidate, nor a running experiment. Model ages are on the engine's clock (simulated days in
    a replay), files' ages by their modification time."""

    enabled: bool = True
    models_keep: int = field(default=10, metadata={"range": (0, 100_000)})
    """Newest model versions per market whose files are kept whatever their age."""
    models_max_age_days: float = field(default=30.0, metadata={"range": (0.0, 36_500.0)})
    experiments_keep: int = field(default=20, metadata={"range": (0, 100_000)})
    """Newest experiment folders (one per agent cycle) per market kept whatever their age."""
    experiments_max_age_days: float = field(default=14.0, metadata={"range": (0.0, 36_500.0)})
    logs_keep: int = field(default=5, metadata={"range": (0, 1000)})
    """Rotated log files (``hydra.log.1`` ...) kept whatever their age; the live log is never deleted."""
    logs_max_age_days: float = field(default=30.0, metadata={"range": (0.0, 36_500.0)})
    backups_keep: int = field(default=3, metadata={"range": (1, 100)})
    """Store backups (``hydra.db.bak-v*``, taken before schema upgrades) kept whatever their age."""
    backups_max_age_days: float = field(default=90.0, metadata={"range": (0.0, 36_500.0)})
    vacuum_every_days: int = field(default=7, metadata={"range": (0, 3650)})
    """VACUUM the store once this many days (by trading date) passed since the last one, while no
    cycle runs (0: never)."""
