-- Idempotency keys of POST /api/v1/payments/ and /refund (Stripe-style and the
-- IETF Idempotency-Key draft): the first response is stored and replayed.
CREATE TABLE idempotency_keys (
    endpoint               text        NOT NULL,
    key                    text        NOT NULL CONSTRAINT idempotency_key_length
                                       CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the request body: the same key with another body is refused.
    request_hash           bytea       NOT NULL,
    -- NULL while the first request is still running.
    response_status        integer,
    response_content_type  text,
    response_body          bytea,
    -- While running, the key is leased; a lease left by a crashed process expires.
    locked_until           timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    expires_at             timestamptz NOT NULL,
    PRIMARY KEY (endpoint, key)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
