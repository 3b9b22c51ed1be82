-- Checks used by the tests of migrations, gateway callbacks and the reconciler.
-- Writes here bypass the service on purpose: they prove the schema itself
-- refuses what the API would refuse.

-- name: checks_b_insert_payment(order_id, amount, currency, status)$
-- Inserts a payment row directly; returns its id (constraint violations raise).
INSERT INTO payments (order_id, amount, currency, status)
VALUES (:order_id, CAST(:amount AS numeric), :currency, :status)
RETURNING id;

-- name: checks_b_insert_refund(payment_id, amount, reason)$
-- Inserts a refund row directly; returns its id (constraint violations raise).
INSERT INTO refunds (payment_id, amount, reason)
VALUES (:payment_id, CAST(:amount AS numeric), :reason)
RETURNING id;

-- name: checks_b_relation_exists(relation)$
-- Whether a table or view of that name exists in the current database.
SELECT to_regclass(CAST(:relation AS text)) IS NOT NULL;

-- name: checks_b_migration_records()
-- Every recorded migration with how many times it is recorded.
SELECT version, count(*) AS times
  FROM schema_migrations
 GROUP BY version
 ORDER BY version;

-- name: checks_b_gateway_events_of_transaction(transaction_id)$
-- How many gateway callbacks were recorded as processed for one transaction.
SELECT count(*) FROM gateway_events WHERE transaction_id = :transaction_id;

-- name: checks_b_payment_status(payment_id)$
-- The stored status of one payment.
SELECT status FROM payments WHERE id = :payment_id;
