-- Bringing a test's database back to the state of a fresh copy of the migrated template
-- (tests/support/database_reset.py): its tables emptied, or else told that it changed
-- in a way emptying tables does not undo.

-- name: tables()
-- Every table of the database's own schemas, quoted for SQL.
SELECT format('%I.%I', schemaname, tablename) AS name
  FROM pg_tables
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1;

-- name: rows_statement(tables)$
-- One query answering, for each given (quoted) table, its name, its number of rows and
-- a checksum of them (the server has no XML support for running it in one step).
SELECT string_agg(format('SELECT %L AS name, count(*) AS row_count, '
                         'md5(string_agg(t::text, E''\n'' ORDER BY t::text)) AS checksum '
                         'FROM %s AS t', name, name), ' UNION ALL ')
  FROM unnest(CAST(:tables AS text[])) AS name;

-- name: empty_statement(tables)$
-- The statements that empty the given (quoted) tables, each before the tables it
-- references, then set their sequences back to the start as if never used: DELETE on
-- a test's few rows takes a fraction of a millisecond of the server's time where
-- TRUNCATE ... RESTART IDENTITY takes 30 ms writing new files for every table.
WITH RECURSIVE given AS (
    SELECT CAST(name AS regclass) AS rel FROM unnest(CAST(:tables AS text[])) AS name
), referenced(rel, depth) AS (
    SELECT rel, 0 FROM given
    UNION ALL
    SELECT c.confrelid, r.depth + 1
      FROM referenced AS r
      JOIN pg_constraint AS c ON c.conrelid = r.rel AND c.contype = 'f'
     WHERE c.confrelid <> r.rel AND r.depth < 10
), deletes AS (
    SELECT format('DELETE FROM %s', rel) AS statement, max(depth) AS depth
      FROM referenced
     WHERE rel IN (SELECT rel FROM given)
     GROUP BY rel
), restarts AS (
    SELECT format('SELECT setval(%L, %s, false)', CAST(s.seqrelid AS regclass), s.seqstart)
               AS statement
      FROM pg_depend AS d
      JOIN pg_sequence AS s ON s.seqrelid = d.objid
     WHERE d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
       AND d.refobjid IN (SELECT rel FROM given)
)
SELECT string_agg(statement, '; ' ORDER BY step, depth, statement)
  FROM (SELECT 1 AS step, depth, statement FROM deletes
        UNION ALL SELECT 2, 0, statement FROM restarts) AS steps;

-- name: terminate_other_sessions()$
-- Ends every other session on this database (a test may leave one open); how many.
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();

-- name: catalog_fingerprint()$
-- Changes with any DDL on this database (the catalog rows' transaction ids, and what a
-- pg_class row describes) and with the sequences' positions.
SELECT md5(string_agg(line, E'\n' ORDER BY line))
  FROM (SELECT concat_ws(' ', 'class', oid, relname, relnamespace, relkind, relowner,
                         relacl, reloptions, relpersistence, relrowsecurity) FROM pg_class
        UNION ALL SELECT concat_ws(' ', 'attribute', attrelid, attnum, xmin) FROM pg_attribute
        UNION ALL SELECT concat_ws(' ', 'attrdef', oid, xmin) FROM pg_attrdef
        UNION ALL SELECT concat_ws(' ', 'constraint', oid, xmin) FROM pg_constraint
        UNION ALL SELECT concat_ws(' ', 'index', indexrelid, xmin) FROM pg_index
        UNION ALL SELECT concat_ws(' ', 'trigger', oid, xmin) FROM pg_trigger
        UNION ALL SELECT concat_ws(' ', 'event trigger', oid, xmin) FROM pg_event_trigger
        UNION ALL SELECT concat_ws(' ', 'rule', oid, xmin) FROM pg_rewrite
        UNION ALL SELECT concat_ws(' ', 'policy', oid, xmin) FROM pg_policy
        UNION ALL SELECT concat_ws(' ', 'proc', oid, xmin) FROM pg_proc
        UNION ALL SELECT concat_ws(' ', 'type', oid, xmin) FROM pg_type
        UNION ALL SELECT concat_ws(' ', 'namespace', oid, xmin) FROM pg_namespace
        UNION ALL SELECT concat_ws(' ', 'extension', oid, xmin) FROM pg_extension
        UNION ALL SELECT concat_ws(' ', 'sequence', schemaname, sequencename, last_value)
                    FROM pg_sequences
        UNION ALL SELECT concat_ws(' ', 'database setting', setrole, setconfig)
                    FROM pg_db_role_setting
                   WHERE setdatabase = (SELECT oid FROM pg_database
                                         WHERE datname = current_database())
       ) AS catalog(line);
