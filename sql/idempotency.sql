-- Idempotency keys: claim, complete, release, replay, expire.

-- name: claim_idempotency_key(endpoint, key, request_hash, ttl_seconds, lock_seconds)$
-- Takes a key for a new request: a new key, an expired one, or one whose first
-- request died while running (lease over, same body). NULL when someone holds it.
INSERT INTO idempotency_keys AS k (endpoint, key, request_hash, locked_until, expires_at)
VALUES (:endpoint, :key, :request_hash,
        now() + make_interval(secs => :lock_seconds),
        now() + make_interval(secs => :ttl_seconds))
ON CONFLICT (endpoint, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash,
       response_status = NULL, response_content_type = NULL, response_body = NULL,
       locked_until = EXCLUDED.locked_until,
       created_at = now(),
       expires_at = EXCLUDED.expires_at
 WHERE k.expires_at < now()
    OR (k.response_status IS NULL AND k.locked_until < now()
        AND k.request_hash = EXCLUDED.request_hash)
RETURNING true;

-- name: find_idempotency_key(endpoint, key)^
-- The stored state of a key someone else holds or completed.
SELECT request_hash, response_status, response_content_type, response_body
  FROM idempotency_keys
 WHERE endpoint = :endpoint AND key = :key;

-- name: complete_idempotency_key(endpoint, key, response_status, response_content_type, response_body)!
-- Stores the first response, to be replayed for the key's lifetime.
UPDATE idempotency_keys
   SET response_status = :response_status,
       response_content_type = :response_content_type,
       response_body = :response_body,
       locked_until = NULL
 WHERE endpoint = :endpoint AND key = :key;

-- name: release_idempotency_key(endpoint, key)!
-- Forgets a key whose request failed without a definite answer (5xx), so a retry runs again.
DELETE FROM idempotency_keys
 WHERE endpoint = :endpoint AND key = :key AND response_status IS NULL;

-- name: purge_expired_idempotency_keys()!
-- Deletes keys past their lifetime.
DELETE FROM idempotency_keys WHERE expires_at < now();
