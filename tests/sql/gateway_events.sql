-- Test helpers for gateway callbacks: what is recorded, read directly.

-- name: count_gateway_events_of_transaction(transaction_id)$
-- How many gateway callbacks were recorded as processed for one transaction.
SELECT count(*) FROM gateway_events WHERE transaction_id = :transaction_id;
