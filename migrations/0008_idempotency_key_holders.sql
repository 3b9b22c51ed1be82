-- Idempotency keys: which claim holds a key, and which payments its request created.
ALTER TABLE idempotency_keys
    -- Random per claim: only the request holding the key completes or releases it, so
    -- a request whose lock expired and was taken over cannot overwrite the new holder's
    -- answer. NULL once the key has its answer, or is let go after a 5xx.
    ADD COLUMN claim_token uuid,
    -- The payments the key's request created, recorded as their PROCESSING rows commit:
    -- a retry after a 5xx (or after the process died) answers with them, as they now
    -- stand, instead of running again into "duplicate order".
    ADD COLUMN payment_ids bigint[] NOT NULL DEFAULT '{}';
