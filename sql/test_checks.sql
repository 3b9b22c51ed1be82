-- Checks used by the API tests (tests/test_api_*.py): what is stored, read directly.

-- name: api_checks_count_payments()$
-- How many payment rows exist at all (a refused request must store none).
SELECT count(*) FROM payments;

-- name: api_checks_stored_amount(payment_id)$
-- The amount exactly as stored (numeric, never float).
SELECT amount FROM payments WHERE id = :payment_id;

-- name: api_checks_refunds_of_payment(payment_id)
-- The stored refunds of one payment, oldest first.
SELECT id, payment_id, amount, reason, status, created_at
  FROM refunds
 WHERE payment_id = :payment_id
 ORDER BY id;
