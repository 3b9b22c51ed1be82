-- Bookkeeping of the schema migrations in migrations/ (applied in order, each once).

-- name: create_migrations_table#
-- The record of applied migrations; created before anything else.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text        PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: lock_migrations()$
-- Serialises migrators (simultaneous starts) for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtext('payments.schema_migrations'));

-- name: applied_migrations()
-- Versions already applied.
SELECT version FROM schema_migrations ORDER BY version;

-- name: record_migration(version)!
-- Marks one migration applied, in the transaction that applied it.
INSERT INTO schema_migrations (version) VALUES (:version);
