-- Steering the test's streaming standby (tests/support/standby.py).

-- name: pause_replay()$
-- Run on the standby: stop replaying WAL (it keeps receiving it), so it lags.
SELECT pg_wal_replay_pause();

-- name: resume_replay()$
-- Run on the standby: replay again.
SELECT pg_wal_replay_resume();

-- name: in_recovery()$
-- Whether the server this connection reaches is a standby.
SELECT pg_is_in_recovery();

-- name: in_recovery_rows()
-- The same as a stream of one row.
SELECT pg_is_in_recovery() AS in_recovery;

-- name: in_recovery_unless_standby()$
-- Nothing on a standby; `false` on a primary: a row only the primary has.
SELECT pg_is_in_recovery() WHERE NOT pg_is_in_recovery();

-- name: flush_wal()!
-- Run on the primary: a durable commit (the test server's commits are asynchronous),
-- which writes out and flushes all the WAL before it, so the standby can receive it.
SET LOCAL synchronous_commit = on;
SELECT txid_current();
