"""A replay has no operator: its agents run autonomous unless the settings name a level."""

from __future__ import annotations

from hydra_engine.config import load_settings
from hydra_tui.commands.replay import replay_autonomy


def test_replay_runs_autonomous_unless_the_settings_say_otherwise() -> None:
    assert replay_autonomy(load_settings(None)).sections["agent"]["initial_autonomy"] == "autonomous"
    kept = load_settings(None, {"agent.initial_autonomy": "supervised", "agent.cost_bps": 2.0})
    assert replay_autonomy(kept).sections["agent"] == {"initial_autonomy": "supervised", "cost_bps": 2.0}
