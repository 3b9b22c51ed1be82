-- Test helpers for payment rows: what is stored, read directly, and writes that bypass
-- the service on purpose (to prove the schema itself refuses what the API would refuse,
-- or to put a payment into a state the tests need).

-- name: count_payments()$
-- How many payment rows exist at all (a refused request must store none).
SELECT count(*) FROM payments;

-- name: payment_id_of_order(order_id)$
-- The id of an order's payment.
SELECT id FROM payments WHERE order_id = :order_id;

-- name: count_payments_of_order(order_id)$
-- How many payment rows an order has (the UNIQUE constraint says at most one).
SELECT count(*) FROM payments WHERE order_id = :order_id;

-- name: count_processing_payments()$
-- How many payments are still PROCESSING (after reconciliation: none).
SELECT count(*) FROM payments WHERE status = 'PROCESSING';

-- name: payment_amount(payment_id)$
-- The amount exactly as stored (numeric, never float).
SELECT amount FROM payments WHERE id = :payment_id;

-- name: payment_transaction_id(payment_id)$
-- The transaction id of a payment's latest attempt.
SELECT transaction_id FROM payments WHERE id = :payment_id;

-- name: payment_status(payment_id)$
-- The stored status of one payment.
SELECT status FROM payments WHERE id = :payment_id;

-- name: all_payments()
-- Every payment's order, status and amount, one row per payment.
SELECT id, order_id, status, amount
  FROM payments
 ORDER BY id;

-- name: orders_paid_more_than_once()
-- Orders with more than one payment row (the UNIQUE constraint says there are none).
SELECT order_id, count(*) AS payments
  FROM payments
 GROUP BY order_id
HAVING count(*) > 1
 ORDER BY order_id;

-- name: payment_trails()
-- Every payment with its number of refunds and its outbox events (status and id),
-- in seq order: what each payment told the Order Service, and in which order.
SELECT p.id, p.order_id, p.status, p.transaction_id::text AS transaction_id,
       (SELECT count(*) FROM refunds AS r WHERE r.payment_id = p.id) AS refunds,
       COALESCE((SELECT array_agg(o.body->>'payment_status' ORDER BY o.seq)
                   FROM outbox AS o WHERE o.payment_id = p.id),
                CAST('{}' AS text[])) AS event_statuses,
       COALESCE((SELECT array_agg(CAST(o.id AS text) ORDER BY o.seq)
                   FROM outbox AS o WHERE o.payment_id = p.id),
                CAST('{}' AS text[])) AS event_ids
  FROM payments AS p
 ORDER BY p.id;

-- name: insert_payment_row(order_id, amount, currency, status)$
-- Inserts a payment row directly; returns its id (constraint violations raise). Inside a
-- transaction left open it also makes a concurrent create of the same order wait. A
-- status other than PENDING or PROCESSING is a past no legal moves made, on purpose
-- (tests of the columns' own constraints); tests/support/payments.py payment_in
-- reaches a status through the service's statements instead.
INSERT INTO payments (order_id, amount, currency, status)
VALUES (:order_id, CAST(:amount AS numeric), :currency, :status)
RETURNING id;

-- name: lock_payment(payment_id)$
-- Locks one payment row until the transaction ends (a refund of it then waits).
SELECT id FROM payments WHERE id = :payment_id FOR UPDATE;

-- name: age_payment(payment_id, seconds)!
-- Pretends a payment was last touched `seconds` ago (tests of the reconciler).
UPDATE payments SET updated_at = now() - make_interval(secs => :seconds) WHERE id = :payment_id;

-- name: payment_transitions()
-- The status changes the database allows (migrations/0010), one row per move.
SELECT from_status, to_status FROM payment_transitions ORDER BY from_status, to_status;

-- name: hand_typed_status_change(payment_id, status)!
-- What an operator might type in psql: the database must refuse every illegal move.
UPDATE payments SET status = :status, updated_at = now() WHERE id = :payment_id;

-- name: lock_payments_table()!
-- Locks the whole payments table until the transaction ends: even a plain read of it waits.
LOCK TABLE payments IN ACCESS EXCLUSIVE MODE;

-- name: lock_payments_table_for_reading()!
-- What any reader of payments holds until its transaction ends: a session left idle in
-- transaction with it makes an ALTER TABLE payments wait, and every query behind that.
LOCK TABLE payments IN ACCESS SHARE MODE;

-- name: change_payment_amount(payment_id, amount)!
-- Changes a payment's amount by hand (a test that needs the amounts to differ).
UPDATE payments SET amount = CAST(:amount AS numeric) WHERE id = :payment_id;
