-- Test helpers of the ops views (tests/test_ops.py): outbox delivery states set by
-- hand, without a relay, and checks of the `ops` schema itself.

-- name: opstest_mark_delivered(event_id)!
-- Marks an event delivered on its first attempt.
UPDATE outbox
   SET delivered_at = now(), attempts = attempts + 1, claimed_until = NULL, claimed_by = NULL
 WHERE id = CAST(:event_id AS uuid);

-- name: opstest_mark_retrying(event_id, attempts, error)!
-- Marks an event failed `attempts` times, the next try due in ten minutes.
UPDATE outbox
   SET attempts = CAST(:attempts AS integer), last_error = :error,
       next_attempt_at = now() + interval '10 minutes'
 WHERE id = CAST(:event_id AS uuid);

-- name: opstest_mark_dead(event_id, attempts, error)!
-- Marks an event dead after `attempts` failed attempts.
UPDATE outbox
   SET attempts = CAST(:attempts AS integer), last_error = :error, dead_at = now()
 WHERE id = CAST(:event_id AS uuid);

-- name: opstest_mark_claimed(event_id, relay_id)!
-- Leases an event to a relay for a minute (a delivery in flight).
UPDATE outbox
   SET claimed_until = now() + interval '1 minute', claimed_by = :relay_id
 WHERE id = CAST(:event_id AS uuid);

-- name: opstest_today()$
-- Today in the session's time zone, as the ops views count days.
SELECT current_date;

-- name: opstest_stuck_payments()
-- The whole ops.stuck_payments view.
SELECT * FROM ops.stuck_payments;

-- name: opstest_delivery_attempts_by_order()
-- The whole ops.delivery_attempts_by_order view.
SELECT * FROM ops.delivery_attempts_by_order;

-- name: opstest_ops_views()
-- Every view of the ops schema with its comment (the question it answers).
SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ops' AND c.relkind = 'v'
 ORDER BY c.relname;
