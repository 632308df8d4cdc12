"""Command palette provider: every HydraApp action by name (ctrl+p), so no key is the only way in."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Pause / resume trading", "toggle_pause", "Stop placing new orders (or resume); the state is kept in the store"),
    ("Force a cycle", "force_cycle", "Run today's decision now; a repeat for the same day is a DUPLICATE"),
    ("Reconciliation", "reconciliation", "Predicted vs actual slippage: bias, RMSE, pessimism multiplier, scatter"),
    ("Journal", "journal", "Agent and operator journal, filter by type and outcome"),
    ("Models", "model", "Champion lineage, candidates and their metrics"),
    ("Approve promotion", "approve", "Promote the pending candidate the agent proposes"),
    ("Roll back champion", "rollback", "Restore the previous champion (asks first)"),
    ("Flatten", "flatten", "Cancel working orders and close every position through the risk gate (asks first)"),
    ("Help", "help", "Every key binding"),
    ("Faster", "faster", "Shorten the simulated day (lock-step time only)"),
    ("Step one day", "step_day", "Play one simulated day now (lock-step time only)"),
    ("Quit", "quit", "Stop the engine cleanly and exit (asks when orders are working)"),
)
"""(palette name, app action without the ``action_`` prefix, help text)."""


class HydraCommands(Provider):
    """Lists HYDRA's actions; selecting one runs it on the app as its key would."""

    async def discover(self) -> Hits:
        for name, action, text in COMMANDS:
            yield DiscoveryHit(name, partial(self.app.run_action, action), help=text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, text in COMMANDS:
            score = max(matcher.match(name), matcher.match(text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self.app.run_action, action), text=name, help=text)
