"""v006: one champion per market (or per group of markets) instead of one for the whole store.

``models.market``, ``agent_journal.market`` and ``agent_experiments.market`` name the market (or
the user's group) a row belongs to. The single-champion index of v003 becomes one champion per
market. Rows written by the old schema get ``''`` (unassigned): at its next start the engine
hands them, with the agent's persisted state, to its first market in one transaction
(``hydra_engine.agent.per_market.adopt_unassigned``), because which market is first is a setting,
not something the schema knows.
"""

SQL = """
ALTER TABLE models ADD COLUMN market TEXT NOT NULL DEFAULT '';
DROP INDEX IF EXISTS models_single_champion;
CREATE UNIQUE INDEX IF NOT EXISTS models_champion_per_market ON models(market) WHERE status = 'champion';
CREATE INDEX IF NOT EXISTS models_by_market ON models(market, status, seq);

ALTER TABLE agent_journal ADD COLUMN market TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS agent_journal_by_market ON agent_journal(market, id);

ALTER TABLE agent_experiments ADD COLUMN market TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS agent_experiments_by_market ON agent_experiments(market, started_at);
"""
