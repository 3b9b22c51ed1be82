-- PgBouncer's admin console commands (run with psql on its `pgbouncer` database: the
-- console speaks only the simple query protocol), and the server's side of the pool.

-- name: pgbouncer_pools#
-- Clients and server connections of each pool (database, user).
SHOW POOLS;

-- name: pgbouncer_stats#
-- Transactions and queries PgBouncer carried, per database.
SHOW STATS;

-- name: server_sessions_besides(application_name)$
-- This database's server sessions other than this one and those with that application_name.
SELECT count(*)
  FROM pg_stat_activity
 WHERE datname = current_database()
   AND pid <> pg_backend_pid()
   AND application_name IS DISTINCT FROM :application_name;
