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

-- name: idempotency_key_callers(endpoint, key)
-- The callers holding a key of this name at this endpoint (each its own key).
SELECT caller, response_status FROM idempotency_keys
 WHERE endpoint = :endpoint AND key = :key
 ORDER BY caller;

-- name: insert_answered_key_without_caller(endpoint, key, request_hash, response_status, response_body)!
-- An answered key as a service before per-caller keys (migration 0015) stored it.
INSERT INTO idempotency_keys
       (endpoint, key, request_hash, response_status, response_content_type, response_body,
        expires_at)
VALUES (:endpoint, :key, :request_hash, :response_status, 'application/json', :response_body,
        now() + interval '1 hour');

-- name: insert_keys_expiring(prefix, count, seconds)!
-- `count` answered keys named prefix1, prefix2, ... that expire `seconds` from now
-- (negative: expired that long ago).
INSERT INTO idempotency_keys
       (endpoint, key, request_hash, response_status, response_content_type, response_body,
        expires_at)
SELECT '/api/v1/payments/', :prefix || n, '\x00', 201, 'application/json', '{}',
       now() + make_interval(secs => CAST(:seconds AS float8))
  FROM generate_series(1, CAST(:count AS integer)) AS n;

-- name: idempotency_keys_named(prefix)
-- The keys whose name starts with prefix.
SELECT key FROM idempotency_keys WHERE starts_with(key, :prefix) ORDER BY key;

-- name: lock_idempotency_key(key)!
-- Locks the keys of this name until the transaction ends, as a claim taking one does.
SELECT 1 FROM idempotency_keys WHERE key = :key FOR UPDATE;
