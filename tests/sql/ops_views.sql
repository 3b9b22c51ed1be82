-- Test helpers for the ops views: whole views, their comments, and today as they count days.

-- name: ops_views()
-- Every view of the ops schema with its comment (the question it answers).
SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ops' AND c.relkind = 'v'
 ORDER BY c.relname;

-- name: all_stuck_payments()
-- Every row of the ops.stuck_payments view.
SELECT * FROM ops.stuck_payments;

-- name: all_delivery_attempts_by_order()
-- Every row of the ops.delivery_attempts_by_order view.
SELECT * FROM ops.delivery_attempts_by_order;

-- name: current_day()$
-- Today in the session's time zone, as the ops views count days.
SELECT current_date;

-- name: declines_by_code()
-- Declined attempts by failure code, all days together (the view splits them by day).
SELECT failure_code, sum(attempts) AS attempts
  FROM ops.declines_by_code_day
 GROUP BY failure_code;
