-- Gateway callbacks already applied, so that a redelivered callback is a no-op.

-- name: record_gateway_event(webhook_id, transaction_id, status)<!
-- Remembers a callback id; returns NULL when it was seen before.
INSERT INTO gateway_events (webhook_id, transaction_id, status)
VALUES (:webhook_id, :transaction_id, :status)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id;
