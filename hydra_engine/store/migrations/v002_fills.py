"""Fills, their columnar slippage blocks, breaker state and the daily order counts.

``fills``: one row per execution, UNIQUE by exec_id (the journal inserts with ON CONFLICT DO
NOTHING, so a replayed execution is journalled once). Times are ISO-8601 UTC text with
microseconds; prices in quote currency per unit; slippage in price units (positive is a cost);
commission in account currency (NULL until its report arrives).

``fill_slippage_blocks``: the (predicted, actual, arrival mid) triple of every fill that has all
three, packed as little-endian float64 in blocks of up to 64 fills per (symbol, data_type), so the
reconciler reads a million fills as ~16k blobs instead of a million rows. Since v005 the journal
folds fills into blocks every 64 fills behind a mark (see v005_fill_perf).

``breaker_state``: one row per risk breaker. ``risk_order_counts``: orders approved per trading
date, so a restart does not reset the daily cap.
"""

SQL = """
CREATE TABLE fills (
    id                  INTEGER PRIMARY KEY,
    exec_id             TEXT NOT NULL UNIQUE,
    fill_time           TEXT NOT NULL,
    symbol              TEXT NOT NULL,
    contract_month      TEXT NOT NULL DEFAULT '',
    direction           TEXT NOT NULL CHECK (direction IN ('BUY', 'SELL')),
    qty                 REAL NOT NULL CHECK (qty > 0),
    limit_price         REAL,
    arrival_mid         REAL,
    fill_price          REAL NOT NULL,
    predicted_slippage  REAL,
    actual_slippage     REAL,
    latency_ms          REAL,
    order_ref           TEXT NOT NULL DEFAULT '',
    perm_id             INTEGER,
    commission          REAL,
    data_type           TEXT NOT NULL CHECK (data_type IN ('live', 'delayed'))
);
CREATE INDEX fills_symbol_time ON fills(symbol, fill_time);
CREATE INDEX fills_time ON fills(fill_time);

CREATE TABLE fill_slippage_blocks (
    symbol     TEXT NOT NULL,
    data_type  TEXT NOT NULL,
    block_no   INTEGER NOT NULL,
    n_fills    INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (symbol, data_type, block_no)
) WITHOUT ROWID;

CREATE TABLE breaker_state (
    name                TEXT PRIMARY KEY,
    state               TEXT NOT NULL CHECK (state IN ('ACTIVE', 'TRIGGERED', 'COOLDOWN')),
    triggered_at        TEXT,
    cooldown_remaining  INTEGER NOT NULL DEFAULT 0 CHECK (cooldown_remaining >= 0),
    reason              TEXT NOT NULL DEFAULT '',
    last_day            TEXT,
    updated_at          TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE risk_order_counts (
    trading_date  TEXT PRIMARY KEY,
    orders        INTEGER NOT NULL DEFAULT 0,
    reprices      INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT NOT NULL
) WITHOUT ROWID;
"""
