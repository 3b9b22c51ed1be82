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

-- name: wal_inserted_position()$
-- Run on the primary: the end of the WAL inserted so far, commits not yet written out
-- included (the test server commits asynchronously: pg_current_wal_lsn, the written
-- end, can stay behind a commit the client was already told of for up to
-- wal_writer_delay), as a byte offset like replica_replay_position's.
SELECT CAST(pg_current_wal_insert_lsn() - CAST('0/0' AS pg_lsn) AS bigint);

-- name: flush_wal()!
-- Run on the primary after reading a position: one more commit, made durable, so that
-- the WAL runs past that position (which may be a page header's end) and is flushed
-- for the standby to receive.
SET LOCAL synchronous_commit = on;
SELECT txid_current();
