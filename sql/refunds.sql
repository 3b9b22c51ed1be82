-- Write side of refunds.

-- name: refund_payment(payment_id, from_statuses, amount, reason, request_id)^
-- Full refund of a COMPLETED payment (from_statuses: the state machine's sources
-- of REFUNDED, service/domain/rules.py): marks it REFUNDED, records the refund and
-- queues the `refunded` order webhook, in one statement (the relays are woken
-- after the commit, see settle_payments). The row lock taken by
-- the UPDATE makes concurrent refunds of one payment wait and then find it
-- REFUNDED, so exactly one succeeds. Returns no row when the payment is missing,
-- not COMPLETED, or the requested amount is not the payment's.
WITH refunded AS (
    UPDATE payments
       SET status = 'REFUNDED', updated_at = now()
     WHERE id = :payment_id
       AND status = ANY(CAST(:from_statuses AS text[]))
       AND (CAST(:amount AS numeric) IS NULL OR amount = CAST(:amount AS numeric))
 RETURNING id, order_id, amount, transaction_id
), refund AS (
    INSERT INTO refunds (payment_id, amount, reason, status)
    SELECT id, amount, :reason, 'COMPLETED' FROM refunded
    RETURNING id, payment_id, amount, reason, status, created_at
), queued AS (
    INSERT INTO outbox (order_id, payment_id, body, body_text, request_id)
    SELECT order_id, id, order_webhook_body('REFUNDED', transaction_id),
           order_webhook_text('REFUNDED', transaction_id), :request_id
      FROM refunded
    RETURNING id
)
SELECT refund.*
  FROM refund CROSS JOIN queued;
