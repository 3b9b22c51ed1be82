-- Gateway callbacks already applied, so that a redelivered callback is a no-op, kept
-- for [gateway] callback_retention_days: far longer than a gateway retries one.

-- name: record_gateway_event(webhook_id, transaction_id, status)<!
-- Remembers a callback id; returns NULL when it was seen before.
INSERT INTO gateway_events (webhook_id, transaction_id, status)
VALUES (:webhook_id, :transaction_id, :status)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id;

-- name: try_lock_gateway_event_purge()$
-- One process at a time purges old callback ids; the lock ends with the transaction.
SELECT pg_try_advisory_xact_lock(hashtext('payments.gateway_event_purge'));

-- name: purge_gateway_events(retention_days, max_events)$
-- Deletes up to max_events callback ids received more than retention_days ago;
-- returns how many.
WITH purged AS (
    DELETE FROM gateway_events
     WHERE webhook_id IN (
            SELECT webhook_id
              FROM gateway_events
             WHERE received_at < now() - make_interval(
                       secs => CAST(:retention_days AS float8) * 86400)
             LIMIT :max_events)
 RETURNING 1
)
SELECT count(*) FROM purged;
