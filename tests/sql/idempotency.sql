-- Test helpers for idempotency keys: what is stored, read directly.

-- name: idempotency_key(endpoint, key)^
-- One stored idempotency key: its answer (NULL while running), whether it has expired,
-- whether its lock is over (NULL: no one holds it), and the payments its request created.
SELECT endpoint, key, response_status, locked_until, expires_at,
       expires_at < now() AS expired, locked_until < now() AS lock_over, payment_ids
  FROM idempotency_keys
 WHERE endpoint = :endpoint AND key = :key;

-- name: count_idempotency_keys()$
-- How many idempotency keys are stored at all.
SELECT count(*) FROM idempotency_keys;
