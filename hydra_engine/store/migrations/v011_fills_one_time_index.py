"""v011: ``fills`` keeps one time index: ``fills_symbol_time`` is dropped.

Every fill written maintained three indexes (the execId key, ``(symbol, fill_time)`` and
``fill_time``). No query needs the pair: the journal's reads are newest-first over ``fill_time``,
optionally since a time, limited, or for one market (a handful of markets, so walking
``fills_time`` and filtering by symbol costs little); the reconciler reads the slippage blocks and
the tail by row id; the start-up check reads ``MAX(fill_time)``. One index fewer is one B-tree page
fewer in each per-fill commit and about a fifth of the insert's work in a group commit
(``bench/journal_inserts.py``).
"""

SQL = """
DROP INDEX IF EXISTS fills_symbol_time;
"""
