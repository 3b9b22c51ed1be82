-- Write side of refunds: a refund goes through the gateway as a charge does, in two
-- steps around the gateway's answer (service/commands/refunding.py): committed PENDING,
-- then settled COMPLETED (with the payment's move to REFUNDED and the `refunded` order
-- webhook, in one statement) or FAILED (the payment stays COMPLETED). A refund left
-- PENDING is settled by the gateway's event or the reconciler.

-- name: start_refund(payment_id, from_statuses, amount, reason, request_id)^
-- A refund's first step: records it PENDING for a payment still in from_statuses (the
-- state machine's sources of REFUNDED, service/domain/rules.py: COMPLETED) whose amount
-- is the one asked for (none: the payment's), unless the payment has a refund PENDING or
-- COMPLETED already (index refunds_one_live_per_payment). The payment's row lock makes a
-- concurrent refund of it wait, then find this one. Returns the refund with what the
-- gateway is asked with (the payment's order, latest charge attempt and its reference),
-- or no row when it did not apply.
WITH payment AS (
    SELECT id, order_id, amount, transaction_id, gateway_reference
      FROM payments
     WHERE id = :payment_id
       AND status = ANY(CAST(:from_statuses AS text[]))
       AND (CAST(:amount AS numeric) IS NULL OR amount = CAST(:amount AS numeric))
       FOR UPDATE
), refund AS (
    INSERT INTO refunds (payment_id, amount, reason, status, request_id)
    SELECT id, amount, :reason, 'PENDING', :request_id
      FROM payment
    ON CONFLICT (payment_id) WHERE status IN ('PENDING', 'COMPLETED') DO NOTHING
    RETURNING *
)
SELECT refund.*, payment.order_id, payment.transaction_id,
       payment.gateway_reference AS charge_reference
  FROM refund JOIN payment ON payment.id = refund.payment_id;

-- name: settle_refunds(refund_ids, statuses, gateway_references, failure_codes, failure_messages, from_statuses)
-- Records what the gateway said of each refund still PENDING: COMPLETED moves its
-- payment (still in from_statuses: COMPLETED) to REFUNDED and queues the `refunded`
-- order webhook, carrying the request id of the API call that asked for the refund;
-- FAILED keeps why; PENDING keeps the gateway's reference of a refund it has not
-- decided. Returns a row per refund changed; one settled before (by the gateway's event
-- or the reconciler) returns none: settling is idempotent.
-- Each payment is locked before its refund is changed, the order start_refund takes them
-- in: a refund started meanwhile holds the payment and waits on the refund's index entry,
-- so changing the refund first and the payment then would deadlock with it.
WITH decided AS (
    SELECT *
      FROM unnest(CAST(:refund_ids AS bigint[]), CAST(:statuses AS text[]),
                  CAST(:gateway_references AS text[]), CAST(:failure_codes AS text[]),
                  CAST(:failure_messages AS text[]))
           AS item(id, status, gateway_reference, failure_code, failure_message)
), locked AS (
    SELECT refunds.id AS refund_id
      FROM decided
      JOIN refunds ON refunds.id = decided.id
      JOIN payments ON payments.id = refunds.payment_id
     ORDER BY payments.id
       FOR NO KEY UPDATE OF payments
), settled AS (
    UPDATE refunds
       SET status = decided.status,
           gateway_reference = COALESCE(decided.gateway_reference, refunds.gateway_reference),
           failure_code = decided.failure_code,
           failure_message = decided.failure_message,
           settled_at = CASE WHEN decided.status <> 'PENDING' THEN now() END
      FROM decided, locked
     WHERE refunds.id = decided.id
       AND locked.refund_id = decided.id
       AND refunds.status = 'PENDING'
 RETURNING refunds.*
), refunded AS (
    UPDATE payments
       SET status = 'REFUNDED', updated_at = now()
      FROM settled
     WHERE payments.id = settled.payment_id
       AND settled.status = 'COMPLETED'
       AND payments.status = ANY(CAST(:from_statuses AS text[]))
 RETURNING payments.id, payments.order_id, payments.transaction_id, settled.request_id
), queued AS (
    INSERT INTO outbox (order_id, payment_id, body, body_text, request_id)
    SELECT order_id, id, order_webhook_body('REFUNDED', transaction_id),
           order_webhook_text('REFUNDED', transaction_id), request_id
      FROM refunded
)
SELECT * FROM settled;

-- name: claim_pending_refunds(older_than_seconds, lease_seconds, max_rows)
-- Claims the reconciler's refunds: PENDING longer than older_than_seconds (the gateway's
-- answer never came, or it is taking its time), each asked about once per lease of
-- lease_seconds across all processes (SKIP LOCKED), as payments are
-- (claim_undecided_payments). Returns each with what the gateway is asked with.
WITH claimed AS (
    SELECT id
      FROM refunds
     WHERE status = 'PENDING'
       AND created_at < now() - make_interval(secs => :older_than_seconds)
       AND (reconcile_checked_at IS NULL
            OR reconcile_checked_at <= now() - make_interval(secs => :lease_seconds))
     ORDER BY reconcile_checked_at NULLS FIRST, created_at
     LIMIT :max_rows
       FOR UPDATE SKIP LOCKED
), asked AS (
    UPDATE refunds
       SET reconcile_checked_at = now()
      FROM claimed
     WHERE refunds.id = claimed.id
 RETURNING refunds.*
)
SELECT asked.*, p.order_id, p.transaction_id, p.gateway_reference AS charge_reference
  FROM asked JOIN payments AS p ON p.id = asked.payment_id;

-- name: lock_refund_of_event(transaction_id, refund_id)^
-- The refund a gateway's event is about, locked until its transaction ends, with what
-- the gateway is asked with: refund `refund_id` (the id the service gave the gateway)
-- of the payment one of whose charge attempts is transaction_id, or, when the event
-- names no refund of the service's, that payment's refund still PENDING.
SELECT r.*, p.order_id, p.transaction_id, p.gateway_reference AS charge_reference
  FROM payment_attempts AS a
  JOIN payments AS p ON p.id = a.payment_id
  JOIN refunds AS r ON r.payment_id = p.id
 WHERE a.transaction_id = :transaction_id
   AND (r.id = CAST(:refund_id AS bigint)
        OR (CAST(:refund_id AS bigint) IS NULL AND r.status = 'PENDING'))
   FOR UPDATE OF r;

-- name: find_refunds(refund_ids)
-- Refunds as the write side sees them, by id: how a refund settled by someone else
-- first is reported.
SELECT * FROM refunds WHERE id = ANY(CAST(:refund_ids AS bigint[]));

-- name: live_refund_of_payment(payment_id)$
-- The id of the payment's refund still PENDING, if any: why a refund of it is refused.
SELECT id FROM refunds WHERE payment_id = :payment_id AND status = 'PENDING';
