"""v004: the self-healing agent (``hydra_engine.agent``).

``agent_journal`` is the append-only experiment journal: one row per observation summary,
diagnosis, hypothesis, experiment, decision, rollback or data-quality note, queryable by trading
date, type and outcome. ``agent_experiments`` has one row per experiment with its config diff,
metrics, duration, outcome and error. ``agent_state`` keeps the persisted agent state (detectors,
playbook history, autonomy level, pause flag, pending approval) as JSON documents by key.
Times are ISO-8601 UTC text; trading dates ISO dates.
"""

SQL = """
CREATE TABLE IF NOT EXISTS agent_journal (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT NOT NULL,
    trading_date  TEXT,
    cycle_id      TEXT,
    entry_type    TEXT NOT NULL CHECK (entry_type IN ('observation', 'diagnosis', 'hypothesis',
                      'experiment', 'decision', 'rollback', 'data_quality', 'control', 'error')),
    outcome       TEXT NOT NULL DEFAULT '',
    summary       TEXT NOT NULL DEFAULT '',
    payload       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS agent_journal_by_date ON agent_journal(trading_date, id);
CREATE INDEX IF NOT EXISTS agent_journal_by_type ON agent_journal(entry_type, outcome, id);

CREATE TABLE IF NOT EXISTS agent_experiments (
    experiment_id     TEXT PRIMARY KEY,
    cycle_id          TEXT,
    trading_date      TEXT,
    hypothesis_key    TEXT NOT NULL,
    diagnosis         TEXT NOT NULL DEFAULT '',
    config_diff       TEXT NOT NULL DEFAULT '{}',
    status            TEXT NOT NULL CHECK (status IN ('RUNNING', 'OK', 'ERROR', 'TIMEOUT', 'ABANDONED')),
    outcome           TEXT NOT NULL DEFAULT '',
    metrics           TEXT NOT NULL DEFAULT '{}',
    error             TEXT,
    log_path          TEXT,
    candidate_version TEXT,
    started_at        TEXT NOT NULL,
    finished_at       TEXT,
    duration_s        REAL
);
CREATE INDEX IF NOT EXISTS agent_experiments_by_date ON agent_experiments(trading_date);
CREATE INDEX IF NOT EXISTS agent_experiments_by_outcome ON agent_experiments(status, outcome);

CREATE TABLE IF NOT EXISTS agent_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
"""
