-- Test helpers for gateway callbacks: what is recorded, read directly.

-- name: count_gateway_events_of_transaction(transaction_id)$
-- How many gateway callbacks were recorded as processed for one transaction.
SELECT count(*) FROM gateway_events WHERE transaction_id = :transaction_id;

-- name: insert_gateway_events_received(prefix, count, days_ago)!
-- `count` callback ids named prefix1, prefix2, ... received `days_ago` days ago.
INSERT INTO gateway_events (webhook_id, transaction_id, status, received_at)
SELECT :prefix || n, gen_random_uuid(), 'completed',
       now() - make_interval(secs => CAST(:days_ago AS float8) * 86400)
  FROM generate_series(1, CAST(:count AS integer)) AS n;

-- name: gateway_event_ids_named(prefix)
-- The callback ids that start with prefix.
SELECT webhook_id FROM gateway_events WHERE starts_with(webhook_id, :prefix) ORDER BY webhook_id;
