-- Checks of the reliability tests (tests/test_crash_safety.py, tests/test_database_outage.py):
-- the invariants that must hold after crashes and a database outage. Read-only.

-- name: reliability_orders_paid_more_than_once()
-- Orders with more than one payment row (the UNIQUE constraint says there are none).
SELECT order_id, count(*) AS payments
  FROM payments
 GROUP BY order_id
HAVING count(*) > 1
 ORDER BY order_id;

-- name: reliability_payment_orders()
-- Every payment's order, status and amount, one row per payment.
SELECT id, order_id, status, amount
  FROM payments
 ORDER BY id;

-- name: reliability_payments_by_status()
-- How many payments have each status.
SELECT status, count(*) AS payments
  FROM payments
 GROUP BY status
 ORDER BY status;

-- name: reliability_count_processing()$
-- How many payments are still PROCESSING (after reconciliation: none).
SELECT count(*) FROM payments WHERE status = 'PROCESSING';

-- name: reliability_payment_trails()
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

-- name: reliability_refunds_without_refunded_payment()
-- Refunds whose payment is not REFUNDED (there must be none).
SELECT r.id, r.payment_id, p.status
  FROM refunds AS r
  JOIN payments AS p ON p.id = r.payment_id
 WHERE p.status <> 'REFUNDED'
 ORDER BY r.id;

-- name: reliability_outbox_events()
-- Every outbox event with what it says and its delivery state, oldest first.
SELECT CAST(id AS text) AS id, seq, order_id, payment_id,
       body->>'payment_status' AS payment_status,
       body->>'transaction_id' AS transaction_id,
       request_id, attempts, delivered_at, dead_at, last_error
  FROM outbox
 ORDER BY seq;

-- name: reliability_outbox_counts()^
-- Events not yet delivered and alive, dead, delivered; and how many attempts in all.
SELECT count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL) AS pending,
       count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NOT NULL) AS dead,
       count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
       COALESCE(sum(attempts), 0) AS attempts
  FROM outbox;
