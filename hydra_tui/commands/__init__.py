"""The ``hydra-tui`` subcommands, one module per concern; ``cli.py`` imports each one only when it runs.

``status`` (health and exit code), ``diagnose`` (detectors and the last diagnosis per market),
``journal`` (agent and operator journals merged), ``control`` (pause, resume, approve, rollback,
reset-peak, flatten: through the running engine's inbox, or on the store when none runs),
``fill_report``, ``paper_trade``, ``replay`` (with ``market_report`` for the per-market figures);
``store_reader`` finds the store and reads it, ``report_tables`` renders with Rich, ``plain_text``
keeps the text-only tables.
"""

from hydra_tui.commands.plain_text import fills_table, reconciliation_text, table

__all__ = ["fills_table", "reconciliation_text", "table"]
