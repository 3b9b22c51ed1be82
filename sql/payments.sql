-- Write side of one payment: the statements of gateway callbacks, the reconciler
-- and refunds (creating payments is in payment_batches.sql). Each status change and
-- its outbox row are one statement, so they commit together even without an
-- explicit transaction.

-- name: settle_payment(payment_id, status, from_statuses, request_id)^
-- Moves a payment to COMPLETED or FAILED and queues its order webhook, if its
-- status is still one of from_statuses (the state machine's sources of that
-- status, service/domain/rules.py: PROCESSING). No NOTIFY here: it would serialise
-- commits (service/outbox/wakeup.py wakes the relays after the commit instead).
-- Returns no row when the payment had moved on (already settled by a callback or
-- the reconciler): settling is idempotent.
WITH settled AS (
    UPDATE payments
       SET status = :status, updated_at = now()
     WHERE id = :payment_id AND status = ANY(CAST(:from_statuses AS text[]))
 RETURNING id, order_id, amount, currency, status, payment_method, transaction_id,
           created_at, updated_at
), queued AS (
    INSERT INTO outbox (order_id, payment_id, body, request_id)
    SELECT order_id, id, order_webhook_body(status, transaction_id), :request_id
      FROM settled
    RETURNING id
)
SELECT settled.*
  FROM settled CROSS JOIN queued;

-- name: find_payment(payment_id)^
-- The payment as the write side sees it (no refunds), to explain a refused change.
SELECT id, order_id, amount, currency, status, payment_method, transaction_id,
       created_at, updated_at
  FROM payments
 WHERE id = :payment_id;

-- name: lock_payment_by_transaction(transaction_id)^
-- A gateway callback's payment, locked until its transaction ends.
SELECT id, order_id, amount, currency, status, payment_method, transaction_id,
       created_at, updated_at
  FROM payments
 WHERE transaction_id = :transaction_id
   FOR UPDATE;

-- name: list_stuck_processing(older_than_seconds, max_rows)
-- Payments left PROCESSING longer than expected (a crash between the two steps
-- of create, or a gateway callback that never came): the reconciler's work list,
-- never-asked first, then the least recently asked.
SELECT id, order_id, amount, currency, status, payment_method, transaction_id,
       created_at, updated_at
  FROM payments
 WHERE status = 'PROCESSING'
   AND updated_at < now() - make_interval(secs => :older_than_seconds)
 ORDER BY reconcile_checked_at NULLS FIRST, updated_at
 LIMIT :max_rows;

-- name: mark_reconcile_checked(payment_id)!
-- Records that the gateway was asked about a payment it could not settle yet.
UPDATE payments SET reconcile_checked_at = now()
 WHERE id = :payment_id AND status = 'PROCESSING';
