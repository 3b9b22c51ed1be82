-- Write side of one payment: retries, gateway callbacks, the reconciler and refunds
-- (creating and settling payments, one or many, is in payment_batches.sql). Each status change and
-- its outbox row are one statement, so they commit together even without an
-- explicit transaction.

-- name: start_retry(payment_id, from_statuses, payment_method_token, key_caller, key_endpoint, key_name, key_token)^
-- A retry's first step: moves a payment back to PROCESSING under a new transaction_id
-- and starts its new attempt, if its status is still one of from_statuses (FAILED): a
-- compare-and-set, so of two concurrent retries exactly one gets the row. Clears the
-- failure, the gateway's reference and the reconciler's marks of the previous attempt
-- (its lease and manual review flag are about a charge that is over). The new attempt
-- is made with payment_method_token when given (the buyer chose another card), else with
-- the previous one. Returns no row when it did not apply.
-- Under an Idempotency-Key claim (key_*, NULL without one) the payment is recorded on
-- that key in the same statement, as a create's are (insert_processing_many).
WITH retried AS (
    UPDATE payments
       SET status = 'PROCESSING', transaction_id = gen_random_uuid(), failure_code = NULL,
           failure_message = NULL, gateway_reference = NULL, next_action = NULL,
           payment_method_token = COALESCE(CAST(:payment_method_token AS text),
                                            payment_method_token),
           reconcile_checked_at = NULL, manual_review_since = NULL, updated_at = now()
     WHERE id = :payment_id AND status = ANY(CAST(:from_statuses AS text[]))
 RETURNING *
), attempted AS (
    INSERT INTO payment_attempts (payment_id, transaction_id, payment_method_token, created_at)
    SELECT id, transaction_id, payment_method_token, updated_at
      FROM retried
), tied AS (
    UPDATE idempotency_keys AS k
       SET payment_ids = k.payment_ids || retried.id
      FROM retried
     WHERE k.caller = :key_caller AND k.endpoint = :key_endpoint AND k.key = :key_name
       AND k.claim_token = :key_token AND k.response_status IS NULL
       AND NOT retried.id = ANY(k.payment_ids)
)
SELECT * FROM retried;

-- name: lock_payment_by_transaction(transaction_id)^
-- A gateway callback's payment, locked until its transaction ends, found by any of its
-- attempts' transaction ids, with how that attempt stands (attempt_status): a callback
-- may name an attempt a retry has superseded since.
SELECT p.*, a.status AS attempt_status
  FROM payment_attempts a
  JOIN payments p ON p.id = a.payment_id
 WHERE a.transaction_id = :transaction_id
   FOR UPDATE OF p;

-- name: claim_undecided_payments(status, older_than_seconds, lease_seconds, max_rows)
-- Claims the reconciler's work: payments left in `status` longer than expected.
-- PROCESSING: a crash between the two steps of a charge, or a gateway's answer or event
-- that never came (older_than_seconds exceeds the gateway's time limit, so no charge of a
-- claimed payment is still in flight); PENDING: a buyer who never authenticated
-- (older_than_seconds: [gateway] authentication_timeout_seconds). Never-asked first,
-- then the least recently asked, so that payments the gateway cannot settle yet never
-- starve the others. A claim is a lease of lease_seconds (reconcile_checked_at): every
-- other reconciler passes over a claimed payment until it ends (SKIP LOCKED: over one
-- being claimed right now too), so each is asked once per lease across all processes.
WITH claimed AS (
    SELECT id
      FROM payments
     WHERE status = CAST(:status AS text)
       AND status IN ('PROCESSING', 'PENDING')  -- index payments_undecided
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
RETURNING payments.*;

-- name: count_waiting_for_buyer()$
-- How many payments wait for their buyer to authenticate (the gauge
-- payments_waiting_for_buyer).
SELECT count(*) FROM ops.payments_waiting_for_buyer;

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
