"""v009: conflicting fills (the same execId with a different contract, quantity, price or side).

``fill_conflicts``: one row per conflicting report, written in the same transaction that found it
(together with a ``FILL_CONFLICT`` entry in ``ops_journal``). A row with ``cleared_at IS NULL`` is
an open alarm for its market (``symbol``): trading for that market waits until an operator clears
it (``Store.fill_conflicts.clear``). ``journalled`` and ``reported`` are the two fills as JSON.
"""

SQL = """
CREATE TABLE IF NOT EXISTS fill_conflicts (
    id           INTEGER PRIMARY KEY,
    exec_id      TEXT NOT NULL,
    symbol       TEXT NOT NULL,
    detected_at  TEXT NOT NULL,
    differences  TEXT NOT NULL,
    journalled   TEXT NOT NULL,
    reported     TEXT NOT NULL,
    cleared_at   TEXT,
    cleared_by   TEXT NOT NULL DEFAULT '',
    note         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS fill_conflicts_open ON fill_conflicts(symbol) WHERE cleared_at IS NULL;
"""
