"""v008: the operator-request inbox and the running engine's status snapshot.

``operator_requests``: a command run in another process (``hydra-tui pause`` ...) while an engine
holds the store writes a PENDING row; the engine's poller claims it (RUNNING), executes it and
writes the outcome (DONE or FAILED) for the waiting command to print. ``engine_status``: one row the
running engine rewrites every few seconds (mode, connection, breakers, champion, positions, heartbeat),
so ``hydra-tui status`` can read what the engine sees without talking to it.
"""

SQL = """
CREATE TABLE IF NOT EXISTS operator_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT NOT NULL,
    command      TEXT NOT NULL,
    args         TEXT NOT NULL DEFAULT '{}',
    actor        TEXT NOT NULL DEFAULT 'operator',
    status       TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'DONE', 'FAILED')),
    outcome      TEXT NOT NULL DEFAULT '',
    finished_at  TEXT
);
CREATE INDEX IF NOT EXISTS operator_requests_pending ON operator_requests(status, id);

CREATE TABLE IF NOT EXISTS engine_status (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 0),
    written_at  TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    snapshot    TEXT NOT NULL
);
"""
