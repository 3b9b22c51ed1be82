-- The order webhook's body kept as the exact text the relay sends: the relay signs and
-- posts it as it is, without decoding and encoding it again per delivery.

-- The compact body (no spaces, the contract's two keys in its order), as sent. jsonb
-- renders with spaces and may order keys its own way, so `body` stays what readers query
-- (the events API's `data`, the operators' views) and this is what goes on the wire.
-- NULL for events queued before this migration, or by statements of the release before
-- it during a rolling deploy: the relay's claim renders those from `body`
-- (order_webhook_text), byte for byte what the relay sent before. A constant default: no
-- table rewrite.
ALTER TABLE outbox ADD COLUMN body_text text;
COMMENT ON COLUMN outbox.body_text IS
    'The webhook body exactly as sent (compact JSON); NULL: render it from body.';

-- The one rendering of the order webhook's body; order_webhook_body is its jsonb.
CREATE FUNCTION order_webhook_text(payment_status text, transaction_id uuid)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"payment_status":"' || lower(payment_status)
             || '","transaction_id":"' || CAST(transaction_id AS text) || '"}' $$;
COMMENT ON FUNCTION order_webhook_text(text, uuid) IS
    'The order webhook''s body as sent: {"payment_status":...,"transaction_id":...}, compact.';

CREATE OR REPLACE FUNCTION order_webhook_body(payment_status text, transaction_id uuid)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CAST(order_webhook_text(payment_status, transaction_id) AS jsonb) $$;

-- What is sent is what the events API shows as sent. NOT VALID: every row before this
-- migration has no body_text, so there is nothing to check, and no scan under the lock.
ALTER TABLE outbox ADD CONSTRAINT outbox_body_text_is_body
    CHECK (body_text IS NULL OR CAST(body_text AS jsonb) = body) NOT VALID;
