-- Test helpers for refund rows: what is stored, read directly, and a write that bypasses
-- the service on purpose (the schema itself must refuse a bad refund).

-- name: count_refunds()$
-- How many refund rows exist at all.
SELECT count(*) FROM refunds;

-- name: count_refunds_of_payment(payment_id)$
-- How many refunds a payment has (full refunds only: at most one).
SELECT count(*) FROM refunds WHERE payment_id = :payment_id;

-- name: refunds_of_payment(payment_id)
-- The stored refunds of one payment, oldest first.
SELECT id, payment_id, amount, reason, status, created_at
  FROM refunds
 WHERE payment_id = :payment_id
 ORDER BY id;

-- name: refunds_without_refunded_payment()
-- Refunds whose payment is not REFUNDED (there must be none).
SELECT r.id, r.payment_id, p.status
  FROM refunds AS r
  JOIN payments AS p ON p.id = r.payment_id
 WHERE p.status <> 'REFUNDED'
 ORDER BY r.id;

-- name: insert_refund_row(payment_id, amount, reason)$
-- Inserts a refund row directly; returns its id (constraint violations raise).
INSERT INTO refunds (payment_id, amount, reason)
VALUES (:payment_id, CAST(:amount AS numeric), :reason)
RETURNING id;

-- name: lock_payment(payment_id)$
-- Holds a payment's row as starting a refund does (start_refund's first step), until the
-- caller's transaction ends.
SELECT id FROM payments WHERE id = :payment_id FOR UPDATE;
