"""Core schema: store identity, orders, cycles, equity marks and peak, bars, key-value state,
operator journal.

Times are ISO-8601 UTC text with microseconds (sortable); trading dates are ISO dates (exchange
local). Fills and breaker state arrive in v002, the model registry in v003, the agent in v004.
"""

SQL = """
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per order HYDRA decided to send, written (INTENT) BEFORE it is sent, so a crash between
-- writing and sending leaves a detectable INTENT row. orderRef is HYDRA's id; permId IB's.
CREATE TABLE orders (
    order_ref       TEXT PRIMARY KEY,
    perm_id         INTEGER,
    order_id        INTEGER,
    market          TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    con_id          INTEGER,
    local_symbol    TEXT NOT NULL DEFAULT '',
    contract_month  TEXT NOT NULL DEFAULT '',
    action          TEXT NOT NULL CHECK (action IN ('BUY', 'SELL')),
    quantity        REAL NOT NULL CHECK (quantity > 0),
    order_type      TEXT NOT NULL DEFAULT 'LMT',
    limit_price     REAL,
    status          TEXT NOT NULL CHECK (status IN
                        ('INTENT', 'SENT', 'ACKED', 'FILLED', 'CANCELLED', 'REJECTED', 'UNKNOWN')),
    filled          REAL NOT NULL DEFAULT 0,
    avg_fill_price  REAL,
    trading_date    TEXT,
    purpose         TEXT NOT NULL DEFAULT '',
    parent_ref      TEXT,
    error_code      INTEGER,
    message         TEXT NOT NULL DEFAULT '',
    detail          TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    updated_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX orders_perm_id ON orders(perm_id) WHERE perm_id IS NOT NULL;
CREATE INDEX orders_status ON orders(status);
CREATE INDEX orders_market_date ON orders(market, trading_date);

-- Every status change of an order, for the journal and post-mortems.
CREATE TABLE order_events (
    id         INTEGER PRIMARY KEY,
    order_ref  TEXT NOT NULL REFERENCES orders(order_ref) ON DELETE CASCADE,
    at         TEXT NOT NULL,
    status     TEXT NOT NULL,
    filled     REAL,
    message    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX order_events_ref ON order_events(order_ref, id);

-- A cycle runs at most once per (market, trading date): the UNIQUE constraint is the claim.
CREATE TABLE cycles (
    id            INTEGER PRIMARY KEY,
    market        TEXT NOT NULL,
    trading_date  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('RUNNING', 'FINISHED', 'FAILED', 'SKIPPED')),
    trigger       TEXT NOT NULL DEFAULT 'schedule',
    attempts      INTEGER NOT NULL DEFAULT 1,
    owner         TEXT NOT NULL DEFAULT '',
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    summary       TEXT,
    UNIQUE (market, trading_date)
);
CREATE INDEX cycles_started ON cycles(started_at);

-- Closing net liquidation per trading date (account currency).
CREATE TABLE equity_marks (
    trading_date     TEXT PRIMARY KEY,
    net_liquidation  REAL NOT NULL,
    currency         TEXT NOT NULL DEFAULT 'USD',
    source           TEXT NOT NULL DEFAULT 'close',
    marked_at        TEXT NOT NULL
) WITHOUT ROWID;

-- The persisted equity peak (one row).
CREATE TABLE equity_peak (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    peak          REAL NOT NULL,
    trading_date  TEXT,
    reason        TEXT NOT NULL DEFAULT '',
    updated_at    TEXT NOT NULL
);

-- Completed daily bars per market and contract ('CONTFUT' for continuous history or a contract
-- month such as '202612').
CREATE TABLE bars (
    market     TEXT NOT NULL,
    contract   TEXT NOT NULL,
    date       TEXT NOT NULL,
    open       REAL NOT NULL,
    high       REAL NOT NULL,
    low        REAL NOT NULL,
    close      REAL NOT NULL,
    volume     REAL NOT NULL DEFAULT 0,
    wap        REAL,
    bar_count  INTEGER,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (market, contract, date)
) WITHOUT ROWID;

-- Small typed state: pause flag, autonomy level, agent phase, client id...
CREATE TABLE kv (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;

-- Operator commands (pause, reset-peak, approve...) and unexplained position changes.
CREATE TABLE ops_journal (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    command  TEXT NOT NULL DEFAULT '',
    actor    TEXT NOT NULL DEFAULT '',
    message  TEXT NOT NULL DEFAULT '',
    detail   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ops_journal_kind_at ON ops_journal(kind, at);
"""
