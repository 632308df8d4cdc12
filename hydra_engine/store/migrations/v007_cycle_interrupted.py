"""Cycles may end INTERRUPTED: a cycle cut off by a crash whose order session is over is closed as
such at the next start-up (journalled), instead of staying RUNNING and warned about forever.

SQLite cannot change a CHECK constraint in place: the table is rebuilt with the same rows.
"""

SQL = """
CREATE TABLE cycles_v007 (
    id            INTEGER PRIMARY KEY,
    market        TEXT NOT NULL,
    trading_date  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('RUNNING', 'FINISHED', 'FAILED', 'SKIPPED', 'INTERRUPTED')),
    trigger       TEXT NOT NULL DEFAULT 'schedule',
    attempts      INTEGER NOT NULL DEFAULT 1,
    owner         TEXT NOT NULL DEFAULT '',
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    summary       TEXT,
    UNIQUE (market, trading_date)
);
INSERT INTO cycles_v007 (id, market, trading_date, status, trigger, attempts, owner, started_at, finished_at, summary)
    SELECT id, market, trading_date, status, trigger, attempts, owner, started_at, finished_at, summary FROM cycles;
DROP TABLE cycles;
ALTER TABLE cycles_v007 RENAME TO cycles;
CREATE INDEX cycles_started ON cycles(started_at);
"""
