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

-- name: claim_stuck_processing(older_than_seconds, lease_seconds, max_rows)
-- Claims the reconciler's work: payments left PROCESSING longer than expected (a
-- crash between the two steps of create, or a gateway callback that never came),
-- never-asked first, then the least recently asked, so that payments the gateway
-- cannot settle yet never starve the others. A claim is a lease of lease_seconds
-- (reconcile_checked_at): every other reconciler passes over a claimed payment until
-- it ends (SKIP LOCKED: over one being claimed right now too), so each is asked once
-- per lease across all processes. older_than_seconds exceeds the gateway's time
-- limit, so no charge of a claimed payment is still in flight.
WITH claimed AS (
    SELECT id
      FROM payments
     WHERE status = 'PROCESSING'
       AND updated_at < now() - make_interval(secs => :older_than_seconds)
       AND (reconcile_checked_at IS NULL
            OR reconcile_checked_at <= now() - make_interval(secs => :lease_seconds))
     ORDER BY reconcile_checked_at NULLS FIRST, updated_at
     LIMIT :max_rows
       FOR UPDATE SKIP LOCKED
)
UPDATE payments
   SET reconcile_checked_at = now()
  FROM claimed
 WHERE payments.id = claimed.id
RETURNING payments.id, payments.order_id, payments.amount, payments.currency, payments.status,
          payments.payment_method, payments.transaction_id, payments.created_at,
          payments.updated_at;

-- name: flag_for_manual_review(payment_id, older_than_seconds)$
-- Flags a payment the gateway has not settled after older_than_seconds PROCESSING,
-- once: returns its id when flagged now, NULL when too young, flagged before or settled.
UPDATE payments
   SET manual_review_since = now()
 WHERE id = :payment_id
   AND status = 'PROCESSING'
   AND manual_review_since IS NULL
   AND updated_at < now() - make_interval(secs => :older_than_seconds)
RETURNING id;

-- name: count_manual_review()$
-- How many payments wait for manual review (the gauge payments_manual_review).
SELECT count(*) FROM ops.payments_for_manual_review;
