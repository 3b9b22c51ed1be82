-- Idempotency keys are scoped to the caller that used them: two callers sending the same
-- key never see each other's stored answers.
ALTER TABLE idempotency_keys
    -- SHA-256 (hex) of the caller's bearer token, never the token itself; '' when
    -- authentication is off. Rows stored before keep '', the caller of a service without
    -- tokens, and stay valid for their lifetime.
    ADD COLUMN caller text NOT NULL DEFAULT '',
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD PRIMARY KEY (caller, endpoint, key);
