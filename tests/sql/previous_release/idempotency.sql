-- Idempotency keys: claim, complete, release, replay, expire. The statements that create
-- payments under a claim record them on its key themselves (insert_processing_many,
-- start_retry).
-- A key is the caller's own (`caller`: a fingerprint of its bearer token, '' without
-- authentication): the same key sent by two callers is two keys.

-- name: claim_idempotency_key(caller, endpoint, key, request_hash, token, ttl_seconds, lock_seconds)^
-- Takes a key for a new request: a new key, an expired one, or one whose earlier
-- attempt (same body) no longer holds it: it died while running (lease over), or it
-- answered 5xx after creating payments. Returns the payments earlier attempts created;
-- no row when someone holds the key or it has its answer. Only `token` may then
-- complete or release the key.
INSERT INTO idempotency_keys AS k
       (caller, endpoint, key, request_hash, claim_token, locked_until, expires_at)
VALUES (:caller, :endpoint, :key, :request_hash, :token,
        now() + make_interval(secs => :lock_seconds),
        now() + make_interval(secs => :ttl_seconds))
ON CONFLICT (caller, endpoint, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash,
       response_status = NULL, response_content_type = NULL, response_body = NULL,
       claim_token = EXCLUDED.claim_token,
       -- An expired key is a new request; a retry keeps what its earlier attempts created.
       payment_ids = CASE WHEN k.expires_at < now() THEN '{}' ELSE k.payment_ids END,
       locked_until = EXCLUDED.locked_until,
       created_at = now(),
       expires_at = EXCLUDED.expires_at
 WHERE k.expires_at < now()
    OR (k.response_status IS NULL AND (k.locked_until IS NULL OR k.locked_until < now())
        AND k.request_hash = EXCLUDED.request_hash)
RETURNING k.payment_ids;

-- name: find_idempotency_key(caller, endpoint, key)^
-- The stored state of a key someone else holds or completed.
SELECT request_hash, response_status, response_content_type, response_body
  FROM idempotency_keys
 WHERE caller = :caller AND endpoint = :endpoint AND key = :key;

-- name: complete_idempotency_key(caller, endpoint, key, token, response_status, response_content_type, response_body)!
-- Stores the first response, to be replayed for the key's lifetime, if the claim
-- `token` still holds the key ("UPDATE 0": its lock expired and another took it over).
UPDATE idempotency_keys
   SET response_status = :response_status,
       response_content_type = :response_content_type,
       response_body = :response_body,
       claim_token = NULL,
       locked_until = NULL
 WHERE caller = :caller AND endpoint = :endpoint AND key = :key
   AND claim_token = :token AND response_status IS NULL;

-- name: release_idempotency_key(caller, endpoint, key, token)!
-- Lets go of a key whose request failed without a definite answer (5xx), for a retry
-- to take: a key that created no payment is forgotten (the retry runs again), one that
-- did is kept, unlocked (the retry answers with its payments). Only the claim `token`
-- holding the key may.
WITH kept AS (
    UPDATE idempotency_keys
       SET claim_token = NULL, locked_until = NULL
     WHERE caller = :caller AND endpoint = :endpoint AND key = :key
       AND claim_token = :token AND response_status IS NULL AND cardinality(payment_ids) > 0
)
DELETE FROM idempotency_keys
 WHERE caller = :caller AND endpoint = :endpoint AND key = :key
   AND claim_token = :token AND response_status IS NULL AND cardinality(payment_ids) = 0;

-- name: purge_expired_idempotency_keys()!
-- Deletes keys past their lifetime.
DELETE FROM idempotency_keys WHERE expires_at < now();
