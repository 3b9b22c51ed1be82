-- The two steps of creating payments, each one statement for many payments: the
-- items of a batch (POST /api/v1/payments/batch), or the single creates that arrive
-- together (service/db/group_commit.py). Every row is an ordinary payment of one order.
-- settle_payments settles every payment, one or many: creates, retries, the gateway's
-- events and the reconciler (service/commands/charging.py and its callers).

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
    INSERT INTO payments (order_id, amount, currency, metadata, payment_method_token, status)
    SELECT order_id, amount, currency, COALESCE(metadata, '{}'), payment_method_token,
           'PROCESSING'
      FROM item
     ORDER BY order_id, n
    ON CONFLICT (order_id) DO NOTHING
    RETURNING *
), attempted AS (
    INSERT INTO payment_attempts (payment_id, transaction_id, payment_method_token, created_at)
    SELECT id, transaction_id, payment_method_token, created_at
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

-- name: settle_payments(payment_ids, transaction_ids, statuses, gateway_references, next_actions, failure_codes, failure_messages, request_ids, from_statuses)
-- Records what the gateway said of each payment's latest charge attempt: COMPLETED, or
-- FAILED with its failure_code and failure_message, ends the attempt and queues the
-- order webhook; PENDING (waiting for its buyer) keeps next_action (JSON text) for the
-- buyer's page;
-- PROCESSING keeps the gateway's reference of an attempt it has not decided. Applies
-- only while the payment's status is one of from_statuses (what the gateway has not
-- decided yet, service/domain/rules.py UNDECIDED), the move is one of
-- payment_transitions (or the status stays), and its transaction_id is still its latest
-- attempt's (a decision about an attempt a retry superseded changes nothing). Returns a
-- row per payment changed; one that had moved on (settled by a callback or the
-- reconciler, or retried since) returns none: settling is idempotent. No NOTIFY here: it
-- would serialise commits (service/outbox/wakeup.py wakes the relays after the commit
-- instead). request_ids: each webhook carries the id of the API call that caused it.
WITH decided AS (
    SELECT *
      FROM unnest(CAST(:payment_ids AS bigint[]), CAST(:transaction_ids AS uuid[]),
                  CAST(:statuses AS text[]), CAST(:gateway_references AS text[]),
                  CAST(:next_actions AS text[]), CAST(:failure_codes AS text[]),
                  CAST(:failure_messages AS text[]), CAST(:request_ids AS text[]))
           AS item(id, transaction_id, status, gateway_reference, next_action, failure_code,
                   failure_message, request_id)
), settled AS (
    UPDATE payments
       SET status = decided.status,
           gateway_reference = COALESCE(decided.gateway_reference, payments.gateway_reference),
           next_action = CAST(decided.next_action AS jsonb),
           failure_code = decided.failure_code,
           failure_message = decided.failure_message,
           -- Since when it is in its status: the reconciler's ages count from there.
           updated_at = CASE WHEN payments.status = decided.status THEN payments.updated_at
                             ELSE now() END
      FROM decided
     WHERE payments.id = decided.id
       AND payments.transaction_id = decided.transaction_id
       AND payments.status = ANY(CAST(:from_statuses AS text[]))
       AND (payments.status = decided.status
            OR EXISTS (SELECT FROM payment_transitions AS t
                        WHERE t.from_status = payments.status
                          AND t.to_status = decided.status))
 RETURNING decided.request_id, payments.*
), ended AS (
    UPDATE payment_attempts
       SET status = settled.status, failure_code = settled.failure_code,
           gateway_reference = settled.gateway_reference,
           settled_at = CASE WHEN settled.status IN ('COMPLETED', 'FAILED') THEN now() END
      FROM settled
     WHERE payment_attempts.transaction_id = settled.transaction_id
), queued AS (
    INSERT INTO outbox (order_id, payment_id, body, body_text, request_id)
    SELECT order_id, id, order_webhook_body(status, transaction_id),
           order_webhook_text(status, transaction_id), request_id
      FROM settled
     WHERE status IN ('COMPLETED', 'FAILED')
     ORDER BY id
)
SELECT * FROM settled;

-- name: find_payments(payment_ids)
-- The payments as the write side sees them (no refunds), by id: how a batch reports
-- the items someone else settled first, and a refused change explains itself.
SELECT *
  FROM payments
 WHERE id = ANY(CAST(:payment_ids AS bigint[]));
