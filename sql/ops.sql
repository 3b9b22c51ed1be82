-- Operators' questions, by name: `payments ops` lists them, `payments ops run NAME
-- param=value` runs one. Each reads a view of the `ops` schema (migrations/0005), so
-- psql users get the same answer with `SELECT * FROM ops.<view>`.

-- name: ops_payments_by_status_day(since_days)
-- How many payments, for how many yen, by day and status now, over the last since_days days?
SELECT day, status, count, total_jpy
  FROM ops.payments_by_status_day
 WHERE day > current_date - CAST(:since_days AS integer)
 ORDER BY day DESC, status;

-- name: ops_stuck_payments(older_than_seconds)
-- Which payments have been PROCESSING longer than older_than_seconds, longest first?
SELECT payment_id, order_id, amount_jpy, transaction_id, created_at, updated_at, age
  FROM ops.processing_payments
 WHERE age > make_interval(secs => CAST(:older_than_seconds AS float8))
 ORDER BY age DESC;

-- name: ops_payments_for_manual_review()
-- Which payments has the gateway left undecided so long that someone must look, oldest first?
SELECT payment_id, order_id, amount_jpy, transaction_id, processing_since, flagged_at,
       last_asked_at, age
  FROM ops.payments_for_manual_review
 ORDER BY processing_since;

-- name: ops_payments_waiting_for_buyer()
-- Which payments wait for their buyer to authenticate (3-D Secure), longest first?
SELECT payment_id, order_id, amount_jpy, gateway_reference, waiting_since, waiting
  FROM ops.payments_waiting_for_buyer
 ORDER BY waiting_since;

-- name: ops_refunds_by_day(since_days)
-- How many refunds, for how many yen, by day over the last since_days days?
SELECT day, count, total_jpy
  FROM ops.refunds_by_day
 WHERE day > current_date - CAST(:since_days AS integer)
 ORDER BY day DESC;

-- name: ops_outbox_backlog()^
-- How far behind is webhook delivery (pending, oldest pending age, in flight, retrying, dead,
-- blocked behind an earlier event of their order)?
SELECT pending, oldest_pending_age, oldest_pending_seconds, in_flight, retrying, dead,
       delivered_last_hour, blocked
  FROM ops.outbox_backlog;

-- name: ops_undelivered_events(max_rows)
-- Which webhooks are not delivered yet, oldest first, with their state, last error and
-- (blocked ones) the earlier event they wait for?
SELECT id, order_id, payment_id, payment_status, state, attempts, age, next_attempt_at,
       last_error, blocked_by
  FROM ops.undelivered_events
 LIMIT CAST(:max_rows AS integer);

-- name: ops_dead_events(max_rows)
-- Which webhooks gave up (newest first), and with what error? Replay: payments outbox replay.
SELECT id, order_id, payment_id, body, attempts, dead_at, last_error
  FROM ops.dead_events
 ORDER BY dead_at DESC
 LIMIT CAST(:max_rows AS integer);

-- name: ops_delivery_attempts(order_id)
-- How many webhooks and attempts did one order take, delivered, pending, blocked, dead, the
-- error of its undelivered ones, and the last error met before a delivery (history)?
SELECT order_id, events, attempts, delivered, pending, blocked, dead, last_error,
       last_error_before_delivery, last_event_at
  FROM ops.delivery_attempts_by_order
 WHERE order_id = CAST(:order_id AS bigint);

-- name: ops_order_timeline(order_id)
-- What happened to one order: its payment, callbacks, refund and webhooks, in time order?
SELECT at, what, payment_id, amount_jpy, state, attempts, finished_at, detail, ref
  FROM ops.order_timeline
 WHERE order_id = CAST(:order_id AS bigint)
 ORDER BY at, step;
