-- The two steps of creating payments, each one statement for many payments: the
-- items of a batch (POST /api/v1/payments/batch), or the single creates that arrive
-- together (service/db/group_commit.py). Every row is an ordinary payment of one order.
-- settle_payments settles every payment, one or many: creates, retries
-- (service/commands/retry_payment.py), gateway callbacks and the reconciler.

-- name: insert_processing_many(items)
-- Step 1 for many orders at once: record each payment as PROCESSING, with its first
-- charge attempt (payment_attempts). `items` is a JSON array, one object per payment:
-- {"payment": {its columns as the client gave them: order_id, amount, ...}, "key_caller",
-- "key_endpoint", "key_name", "key_token"}. Returns a row per payment created; an order
-- that already has a payment (any status) returns none, and of two items naming one
-- order the first is created. Rows go in by order_id so that two batches naming the
-- same orders wait for each other in one order instead of deadlocking.
-- An item created under an Idempotency-Key claim (key_*, null without one) is recorded
-- on that key in the same statement: no crash can leave a payment its key does not
-- know of, so a retry of the request answers with the payment, never "duplicate order".
-- The payment's columns are read as the table types them (jsonb_populate_record): a
-- column a client gives is named here once, in the INSERT.
WITH item AS (
    SELECT p.*, e.n,
           e.item->>'key_caller' AS caller, e.item->>'key_endpoint' AS endpoint,
           e.item->>'key_name' AS key, CAST(e.item->>'key_token' AS uuid) AS token
      FROM jsonb_array_elements(CAST(:items AS jsonb)) WITH ORDINALITY AS e(item, n)
     CROSS JOIN LATERAL jsonb_populate_record(NULL::payments, e.item->'payment') AS p
), created AS (
    INSERT INTO payments (order_id, amount, currency, metadata, status)
    SELECT order_id, amount, currency, COALESCE(metadata, '{}'), 'PROCESSING'
      FROM item
     ORDER BY order_id, n
    ON CONFLICT (order_id) DO NOTHING
    RETURNING *
), attempted AS (
    INSERT INTO payment_attempts (payment_id, transaction_id, created_at)
    SELECT id, transaction_id, created_at
      FROM created
     ORDER BY id
), tied AS (
    UPDATE idempotency_keys AS k
       SET payment_ids = k.payment_ids || claimed.ids
      FROM (SELECT first.caller, first.endpoint, first.key, first.token,
                   array_agg(created.id ORDER BY created.id) AS ids
              FROM created
              JOIN (SELECT DISTINCT ON (order_id) * FROM item ORDER BY order_id, n) AS first
                   USING (order_id)
             WHERE first.token IS NOT NULL
             GROUP BY first.caller, first.endpoint, first.key, first.token) AS claimed
     WHERE k.caller = claimed.caller AND k.endpoint = claimed.endpoint
       AND k.key = claimed.key AND k.claim_token = claimed.token
       AND k.response_status IS NULL
)
SELECT * FROM created;

-- name: settle_payments(payment_ids, transaction_ids, statuses, failure_codes, failure_messages, request_ids, from_statuses)
-- Moves each payment to its status (COMPLETED, or FAILED with its failure_code and
-- failure_message), ends its attempt and queues its order webhook, if its status is
-- still one of from_statuses (the state machine's sources of those statuses,
-- service/domain/rules.py: PROCESSING) and its transaction_id still its latest
-- attempt's (a decision about an attempt a retry superseded changes nothing). Returns a
-- row per payment settled; one that had moved on (settled by a callback or the
-- reconciler, or retried since) returns none: settling is idempotent. No NOTIFY here:
-- it would serialise commits (service/outbox/wakeup.py wakes the relays after the
-- commit instead). request_ids: each webhook carries the id of the API call that
-- caused it.
WITH decided AS (
    SELECT item.id, item.transaction_id, item.status, item.failure_code, item.failure_message,
           item.request_id
      FROM unnest(CAST(:payment_ids AS bigint[]), CAST(:transaction_ids AS uuid[]),
                  CAST(:statuses AS text[]), CAST(:failure_codes AS text[]),
                  CAST(:failure_messages AS text[]), CAST(:request_ids AS text[]))
           AS item(id, transaction_id, status, failure_code, failure_message, request_id)
), settled AS (
    UPDATE payments
       SET status = decided.status, failure_code = decided.failure_code,
           failure_message = decided.failure_message, updated_at = now()
      FROM decided
     WHERE payments.id = decided.id
       AND payments.transaction_id = decided.transaction_id
       AND payments.status = ANY(CAST(:from_statuses AS text[]))
 RETURNING decided.request_id, payments.*
), ended AS (
    UPDATE payment_attempts
       SET status = settled.status, failure_code = settled.failure_code, settled_at = now()
      FROM settled
     WHERE payment_attempts.transaction_id = settled.transaction_id
), queued AS (
    INSERT INTO outbox (order_id, payment_id, body, body_text, request_id)
    SELECT order_id, id, order_webhook_body(status, transaction_id),
           order_webhook_text(status, transaction_id), request_id
      FROM settled
     ORDER BY id
    RETURNING payment_id
)
SELECT settled.*
  FROM settled JOIN queued ON queued.payment_id = settled.id;

-- name: find_payments(payment_ids)
-- The payments as the write side sees them (no refunds), by id: how a batch reports
-- the items someone else settled first, and a refused change explains itself.
SELECT *
  FROM payments
 WHERE id = ANY(CAST(:payment_ids AS bigint[]));
