"""Versioned schema migrations, one module per version.

Each module is named ``vNNN_<what>.py`` and defines ``SQL: str`` (one or more statements, run in
one transaction). The migration runner in ``hydra_engine.store.database`` discovers the modules,
orders them by NNN and applies those above the database's ``PRAGMA user_version``. Owners:
v001 core (orders, cycles, equity marks, bars, breakers, operator journal, key-value state),
v002 fills, v003 model registry, v004 agent (detector state, experiment journal), v005 the fill journal's fold mark,
v006 one champion per market (market columns on models and the agent's journal), v011 the fills
table's one time index (``fills_symbol_time`` dropped).
"""
