-- Test helpers for the server's sessions on this test's database: who is connected,
-- who waits for a lock, and dropping connections on purpose.

-- name: sessions_of_application(application_name)
-- Server processes of this database's sessions with that application_name.
SELECT pid, backend_start
  FROM pg_stat_activity
 WHERE datname = current_database()
   AND application_name = :application_name;

-- name: terminate_sessions_of_application(application_name)$
-- Drops this database's sessions with that application_name; returns how many.
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE datname = current_database()
   AND application_name = :application_name;

-- name: count_sessions_waiting_on_locks()$
-- How many sessions of this database are waiting for a lock right now.
SELECT count(*)
  FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock';

-- name: count_other_sessions()$
-- How many sessions of this database there are besides the asking one.
SELECT count(*)
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();

-- name: count_running_backlog_queries()$
-- How many sessions of this database are running a statement that reads the outbox
-- backlog right now (readiness and the metrics gauges read it), this one aside.
SELECT count(*)
  FROM pg_stat_activity
 WHERE datname = current_database()
   AND pid <> pg_backend_pid()
   AND state = 'active'
   AND query LIKE '%FROM outbox_backlog%';
