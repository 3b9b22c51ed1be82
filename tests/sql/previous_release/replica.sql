-- The read side's replica check (service/db/replica_probe.py): how far the primary's
-- WAL has gone, and how far a streaming replica has replayed it. WAL positions are
-- byte offsets (pg_lsn minus '0/0'), comparable across the two servers.

-- name: primary_wal_position()$
-- Run on the primary: the end of the WAL written so far.
SELECT CAST(pg_current_wal_lsn() - CAST('0/0' AS pg_lsn) AS bigint);

-- name: replica_replay_position()^
-- Run on the replica: whether it is a standby at all, and the end of the WAL it has
-- replayed (NULL on a server that is not in recovery).
SELECT pg_is_in_recovery() AS in_recovery,
       CAST(pg_last_wal_replay_lsn() - CAST('0/0' AS pg_lsn) AS bigint) AS replayed;
