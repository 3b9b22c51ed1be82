-- Checks of the security tests (tests/test_idempotency.py, tests/test_auth.py,
-- tests/test_hostile_input.py): what is stored, read directly, and row locks that
-- hold a request in the middle of its work.

-- name: security_idempotency_key(endpoint, key)^
-- One stored idempotency key: its answer (NULL while running) and whether it has expired.
SELECT endpoint, key, response_status, locked_until, expires_at,
       expires_at < now() AS expired
  FROM idempotency_keys
 WHERE endpoint = :endpoint AND key = :key;

-- name: security_count_idempotency_keys()$
-- How many idempotency keys are stored at all.
SELECT count(*) FROM idempotency_keys;

-- name: security_count_outbox_events()$
-- How many order webhooks were queued at all (one per status change).
SELECT count(*) FROM outbox;

-- name: security_count_refunds()$
-- How many refund rows exist at all.
SELECT count(*) FROM refunds;

-- name: security_hold_order(order_id)!
-- Inserts a payment row for an order; inside a transaction left open it makes a
-- concurrent create of the same order wait on the unique index until it ends.
INSERT INTO payments (order_id, amount, currency, status)
VALUES (:order_id, 1000, 'JPY', 'PROCESSING');

-- name: security_lock_payment(payment_id)$
-- Locks one payment row until the transaction ends (a refund of it then waits).
SELECT id FROM payments WHERE id = :payment_id FOR UPDATE;

-- name: security_backends_waiting_on_locks()$
-- How many sessions of this database are waiting for a lock right now.
SELECT count(*)
  FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock';
