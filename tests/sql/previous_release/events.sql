-- The events API: the outbox read as the order webhooks it holds, with their delivery
-- state, and one event opened to be sent again. Readable and runnable from psql.

-- name: list_events(order_id, starting_after, max_rows)
-- A page of events with their delivery state, oldest first, continuing after the event
-- `starting_after`: one order's (order_id) or everyone's. Only events of transactions
-- older than every transaction still running are listed, in (created_xid, seq) order
-- (migrations/0013): an event that commits late sorts after every event a client could
-- have paged past, so no page skips one. Blocked: waiting behind an earlier undelivered
-- event of its order (view outbox_blocked).
WITH page AS (
    SELECT o.id, o.created_xid, o.seq, o.order_id, o.payment_id, o.body, o.created_at,
           o.attempts, o.last_attempt_at, o.delivered_at, o.dead_at, o.last_error
      FROM outbox AS o
     WHERE o.created_xid < pg_snapshot_xmin(pg_current_snapshot())
       AND (CAST(:order_id AS bigint) IS NULL OR o.order_id = CAST(:order_id AS bigint))
       AND (CAST(:starting_after AS uuid) IS NULL
            OR (o.created_xid, o.seq) > (SELECT c.created_xid, c.seq
                                           FROM outbox AS c
                                          WHERE c.id = CAST(:starting_after AS uuid)))
     ORDER BY o.created_xid, o.seq
     LIMIT :max_rows
)
SELECT p.id, p.order_id, p.payment_id, 'payment.' || (p.body->>'payment_status') AS type,
       p.body::text AS data, p.created_at,
       CASE WHEN p.delivered_at IS NOT NULL THEN 'delivered'
            WHEN p.dead_at IS NOT NULL THEN 'dead'
            WHEN b.id IS NOT NULL THEN 'blocked'
            ELSE 'pending' END AS state,
       p.attempts,
       -- Sends made before migrations/0013 left no time of their own: their outcome's.
       COALESCE(p.last_attempt_at, p.delivered_at, p.dead_at) AS last_attempt_at,
       p.delivered_at, p.last_error
  FROM page AS p
  LEFT JOIN outbox_blocked AS b ON b.id = p.id
 ORDER BY p.created_xid, p.seq;

-- name: find_event_id(event_id)^
-- The event's id if it is kept (none: never queued, or deleted after retention).
SELECT id FROM outbox WHERE id = CAST(:event_id AS uuid);

-- name: reopen_event(event_id)
-- Opens an event to be sent again: it and every later event of its order that was
-- already delivered become undelivered, with a fresh set of attempts, due now. Later
-- delivered events go again after it, so an order's delivered events stay the first of
-- its events (what the claim's ordering rule relies on) and the Order Service ends on
-- the order's latest event, as before. Returns those and the event itself, whatever its
-- state; nothing when no event has that id. Dead events: replay_dead_events; earlier
-- undelivered ones: retry_waiting_events (sql/outbox.sql).
WITH target AS (
    SELECT id, order_id, seq FROM outbox WHERE id = CAST(:event_id AS uuid)
), reopened AS (
    UPDATE outbox AS o
       SET delivered_at = NULL,
           attempts = 0,
           next_attempt_at = now(),
           claimed_until = NULL,
           claimed_by = NULL
      FROM target AS t
     WHERE o.order_id = t.order_id
       AND o.seq >= t.seq
       AND o.delivered_at IS NOT NULL
 RETURNING o.id, o.order_id, o.seq
)
SELECT id, order_id, seq FROM target
 UNION
SELECT id, order_id, seq FROM reopened;
