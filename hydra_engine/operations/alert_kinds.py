"""The operator alert vocabulary: what can be raised, how serious it is, and what happened to it."""

from __future__ import annotations

from enum import StrEnum


class AlertKind(StrEnum):
    BREAKER_TRIPPED = "breaker_tripped"
    """A risk breaker tripped: trading is REDUCING or HALTED until its cooldown ends."""
    DISCONNECTED = "disconnected"
    """The broker has been unreachable longer than ``alerts.disconnect_after_min`` outside the restart window."""
    RECONNECTED = "reconnected"
    """The broker came back after a DISCONNECTED alert."""
    BROKER_DOWN_BEFORE_DECISION = "broker_down_before_decision"
    """A decision is due soon and the broker is down: the cycle will be skipped unless it returns."""
    CYCLE_FAILED = "cycle_failed"
    """A daily cycle raised an error (no orders for that market and date)."""
    CYCLE_SKIPPED = "cycle_skipped"
    """A daily cycle did not run its steps (broker down or its state unknown)."""
    APPROVAL_NEEDED = "approval_needed"
    """A candidate passed the promotion gate and waits for ``hydra-tui approve``."""
    ROLLBACK = "rollback"
    """The agent rolled a champion back (or, in lockdown, recommends it)."""
    DERISK = "derisk"
    """The agent cut a market's size: its champion is plainly worse than a coin (or, in lockdown, recommends it)."""
    STALE_LOCK = "stale_lock"
    """At start the store's lock named a process that was gone: the last run did not stop cleanly."""


ALL_KINDS: tuple[str, ...] = tuple(k.value for k in AlertKind)


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertOutcome(StrEnum):
    DELIVERED = "DELIVERED"
    """Every configured channel took it."""
    SUPPRESSED = "SUPPRESSED"
    """Rate limit: the same kind was delivered less than ``alerts.min_interval_s`` ago."""
    FAILED = "FAILED"
    """At least one channel failed (the error is in the journal entry)."""
    NO_CHANNEL = "NO_CHANNEL"
    """No command and no webhook configured: journalled and shown only."""
