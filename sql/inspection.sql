-- Checks of the stored state, used by the test suite and handy from psql.

-- name: outbox_events_of_payment(payment_id)
-- Every order webhook queued for one payment, oldest first.
SELECT id, seq, order_id, payment_id, body::text AS body, attempts, delivered_at, dead_at,
       last_error
  FROM outbox
 WHERE payment_id = :payment_id
 ORDER BY seq;

-- name: outbox_events_of_order(order_id)
-- Every order webhook queued for one order, oldest first.
SELECT id, seq, order_id, payment_id, body::text AS body, attempts, delivered_at, dead_at,
       last_error
  FROM outbox
 WHERE order_id = :order_id
 ORDER BY seq;

-- name: count_payments_of_order(order_id)$
-- How many payment rows an order has (the UNIQUE constraint says at most one).
SELECT count(*) FROM payments WHERE order_id = :order_id;

-- name: count_refunds_of_payment(payment_id)$
-- How many refunds a payment has (full refunds only: at most one).
SELECT count(*) FROM refunds WHERE payment_id = :payment_id;

-- name: age_payment(payment_id, seconds)!
-- Pretends a payment was last touched `seconds` ago (tests of the reconciler).
UPDATE payments SET updated_at = now() - make_interval(secs => :seconds) WHERE id = :payment_id;

-- name: force_payment_status(payment_id, status)!
-- Sets a status without the state machine: only for tests and repairs by hand.
UPDATE payments SET status = :status, updated_at = now() WHERE id = :payment_id;
