"""v003: the model registry (``hydra_engine.model.registry``).

``models`` holds one row per registered model version; its files live in ``models/<version>/``.
A partial unique index guarantees at most one champion at any time, so a half-applied switch is
impossible even across processes. ``previous_champion`` records whom a champion replaced, which
makes rollback a walk back along promotions. ``model_events`` is the append-only audit trail.
"""

SQL = """
CREATE TABLE IF NOT EXISTS models (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    version           TEXT NOT NULL UNIQUE,
    family            TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'candidate'
                      CHECK (status IN ('candidate', 'champion', 'archived', 'rejected')),
    content_hash      TEXT NOT NULL,
    path              TEXT NOT NULL,
    parent            TEXT REFERENCES models(version),
    mutation          TEXT,
    spec_json         TEXT NOT NULL,
    metrics_json      TEXT NOT NULL DEFAULT '{}',
    train_start       TEXT,
    train_end         TEXT,
    n_train           INTEGER,
    created_at        TEXT NOT NULL,
    promoted_at       TEXT,
    archived_at       TEXT,
    superseded_by     TEXT REFERENCES models(version),
    previous_champion TEXT REFERENCES models(version),
    status_reason     TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS models_single_champion ON models(status) WHERE status = 'champion';
CREATE INDEX IF NOT EXISTS models_by_status ON models(status, seq);
CREATE INDEX IF NOT EXISTS models_by_hash ON models(content_hash);

CREATE TABLE IF NOT EXISTS model_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('register', 'promote', 'rollback', 'reject', 'archive')),
    version   TEXT NOT NULL REFERENCES models(version),
    previous  TEXT,
    reason    TEXT
);

CREATE INDEX IF NOT EXISTS model_events_by_version ON model_events(version, id);
"""
