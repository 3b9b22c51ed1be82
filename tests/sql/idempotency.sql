-- Test helpers for idempotency keys: what is stored, read directly.

-- name: idempotency_key(endpoint, key)^
-- One stored idempotency key: its answer (NULL while running) and whether it has expired.
SELECT endpoint, key, response_status, locked_until, expires_at,
       expires_at < now() AS expired
  FROM idempotency_keys
 WHERE endpoint = :endpoint AND key = :key;

-- name: count_idempotency_keys()$
-- How many idempotency keys are stored at all.
SELECT count(*) FROM idempotency_keys;
