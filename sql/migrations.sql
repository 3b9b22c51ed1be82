-- Bookkeeping of the schema migrations in migrations/ (applied in order, each once), and
-- what the runner needs to apply them on a live database (service/db/migrate.py).

-- name: create_migrations_table#
-- The record of applied migrations; created before anything else.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text        PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: try_lock_migrations()$
-- Serialises migrators (simultaneous starts): true when this session now holds the
-- migrators' lock, until unlock_migrations or its end (each migration commits on its
-- own, so the lock must outlast transactions); false when another holds it. The others
-- try again later rather than wait in a statement: CREATE INDEX CONCURRENTLY waits for
-- every statement older than it, which would be waiting for it. The key is the one
-- earlier releases took per transaction, so old and new migrators exclude each other.
SELECT pg_try_advisory_lock(hashtext('payments.schema_migrations'));

-- name: unlock_migrations()$
-- Lets the next migrator in.
SELECT pg_advisory_unlock(hashtext('payments.schema_migrations'));

-- name: applied_migrations()
-- Versions already applied.
SELECT version FROM schema_migrations ORDER BY version;

-- name: record_migration(version)!
-- Marks one migration applied, in the transaction that applied it.
INSERT INTO schema_migrations (version) VALUES (:version);

-- name: limit_lock_waits(milliseconds, transaction_only)$
-- How long each statement may wait for a lock before it gives up (lock_timeout): for
-- the rest of the transaction (SET LOCAL), or of the session outside one. A statement
-- waiting for a lock makes every later request for a conflicting one wait behind it.
SELECT set_config('lock_timeout', format('%sms', CAST(:milliseconds AS integer)), :transaction_only);

-- name: unlimit_lock_waits()!
-- The session's own lock_timeout again, after statements run outside a transaction.
RESET lock_timeout;

-- name: invalid_index_drop(index_name)$
-- The statement that drops the index of that name if it is INVALID, NULL otherwise. A
-- CREATE INDEX CONCURRENTLY that failed or was cut off leaves one behind, which IF NOT
-- EXISTS would take for the index. The drop is CONCURRENTLY too: queries go on meanwhile.
SELECT format('DROP INDEX CONCURRENTLY IF EXISTS %s', CAST(i.indexrelid AS regclass))
  FROM pg_index AS i
 WHERE i.indexrelid = to_regclass(CAST(:index_name AS text))
   AND NOT i.indisvalid;

-- name: long_transactions(older_than_seconds)
-- The other sessions of this database in a transaction for longer than
-- older_than_seconds, oldest first, with the tables they hold locks on. Locks last until
-- their transaction ends, so a lock that a migration waited that long for is held by one
-- of them.
SELECT a.pid, a.state, a.application_name,
       CAST(extract(epoch FROM now() - a.xact_start) AS float8) AS seconds,
       left(a.query, 120) AS query,
       (SELECT string_agg(format('%s on %s', l.mode, c.relname), ', ' ORDER BY c.relname)
          FROM pg_locks AS l
          JOIN pg_class AS c ON c.oid = l.relation
         WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation'
           AND c.relkind IN ('r', 'p', 'm')
           AND c.relnamespace <> CAST('pg_catalog' AS regnamespace)) AS locks
  FROM pg_stat_activity AS a
 WHERE a.datname = current_database()
   AND a.pid <> pg_backend_pid()
   AND a.xact_start < now() - make_interval(secs => :older_than_seconds)
 ORDER BY a.xact_start;
