"""The slippage blocks' fold mark: per-fill commits no longer rewrite a block.

``fill_slippage_mark.folded_through_id``: every fill with ``fills.id <=`` this value that has a
(predicted, actual, arrival mid) triple is packed in ``fill_slippage_blocks``; fills above it are
not (yet). The journal folds the unpacked tail into blocks once it reaches 64 fills, in the same
transaction as the insert that completes it, so a per-fill commit touches only the ``fills`` pages
63 times out of 64. The reconciler reads the blocks plus the tail (``fills`` rows above the mark: a
short rowid range).

Databases migrated from v002 had every fill packed as it was written: the mark starts at the
highest fill id.
"""

SQL = """
CREATE TABLE fill_slippage_mark (
    singleton          INTEGER PRIMARY KEY CHECK (singleton = 0),
    folded_through_id  INTEGER NOT NULL CHECK (folded_through_id >= 0)
);
INSERT INTO fill_slippage_mark (singleton, folded_through_id) VALUES (0, (SELECT COALESCE(MAX(id), 0) FROM fills));
"""
