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

-- name: column_exists(table_name, column_name)$
-- Whether the table has a column of that name.
SELECT EXISTS (SELECT FROM information_schema.columns
                WHERE table_schema = current_schema()
                  AND table_name = :table_name AND column_name = :column_name);

-- name: index_state(index_name)^
-- Whether the index is valid (a failed CREATE INDEX CONCURRENTLY leaves it not), and its
-- comment; no row when there is no such index.
SELECT i.indisvalid AS valid, obj_description(i.indexrelid, 'pg_class') AS comment
  FROM pg_index AS i
 WHERE i.indexrelid = to_regclass(CAST(:index_name AS text));

-- name: index_definitions(table_name)
-- The definitions of a table's indexes, by name.
SELECT indexname, indexdef
  FROM pg_indexes
 WHERE schemaname = current_schema() AND tablename = :table_name
 ORDER BY indexname;
