-- Test helpers for the schema itself: which relations exist, which migrations are recorded.

-- name: relation_exists(relation)$
-- Whether a table or view of that name exists in the current database.
SELECT to_regclass(CAST(:relation AS text)) IS NOT NULL;

-- name: migration_records()
-- Every recorded migration with how many times it is recorded.
SELECT version, count(*) AS times
  FROM schema_migrations
 GROUP BY version
 ORDER BY version;
