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

-- name: count_ddl#
-- In the template: every DDL command run on a copy of it moves a sequence of its own,
-- so that a test's schema change shows in the sequences' positions. Needs a superuser
-- (event triggers); elsewhere the copies are not reused.
CREATE SCHEMA test_reset;
CREATE SEQUENCE test_reset.ddl_commands;
CREATE FUNCTION test_reset.count_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('test_reset.ddl_commands');
END
$$;
CREATE EVENT TRIGGER test_reset_count_ddl ON ddl_command_end
    EXECUTE FUNCTION test_reset.count_ddl();

-- name: fingerprint()$
-- Changes with any DDL on this database (test_reset.ddl_commands, above), with the
-- sequences' positions and with the database's settings. A few catalog rows, where
-- a checksum of the catalogs took a new session 20 ms of the server's time.
SELECT concat_ws(E'\n',
                 (SELECT string_agg(concat_ws(' ', schemaname, sequencename, last_value),
                                    E'\n' ORDER BY schemaname, sequencename)
                    FROM pg_sequences),
                 (SELECT string_agg(concat_ws(' ', setrole, setconfig), E'\n' ORDER BY setrole)
                    FROM pg_db_role_setting
                   WHERE setdatabase = (SELECT oid FROM pg_database
                                         WHERE datname = current_database())));
