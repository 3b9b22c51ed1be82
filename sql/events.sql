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
       p.body AS data, p.created_at,
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

-- name: lock_order_of_event(event_id)^
-- Locks the payment of the event's order, as every statement that queues an event of
-- that order does (settle_payments, refund_payment): a redelivery's reopen_event after
-- it, in the same transaction, sees every event of the order committed before, and an
-- event queued meanwhile commits after the redelivery (so it waits behind the reopened
-- event). Returns the payment's id; nothing when no event has that id.
SELECT p.id
  FROM outbox AS o
  JOIN payments AS p ON p.id = o.payment_id
 WHERE o.id = CAST(:event_id AS uuid)
   FOR NO KEY UPDATE OF p;

-- name: reopen_event(event_id)
-- Opens a delivered event to be sent again: it and every later event of its order that
-- was already delivered become undelivered, with a fresh set of attempts, due now. Later
-- delivered events go again after it, so an order's delivered events stay the first of
-- its events (what the claim's ordering rule relies on) and the Order Service ends on
-- the order's latest event, as before. The later events not delivered yet are marked
-- send_again (migrations/0016): one being sent now is not delivered by that send, and
-- goes again after this one; the claim holds this one back until that send ends. Each
-- row is judged as it is when locked (a send of it recorded meanwhile: reopened, not
-- marked). Returns the event itself, whatever its state, and the later events that now
-- go after it (dead ones stay dead); nothing when no event has that id. Dead events:
-- replay_dead_events; earlier undelivered ones: retry_waiting_events (sql/outbox.sql).
WITH target AS (
    SELECT id, order_id, seq, delivered_at IS NOT NULL AS delivered
      FROM outbox
     WHERE id = CAST(:event_id AS uuid)
), reopened AS (
    UPDATE outbox AS o
       SET delivered_at = NULL,
           attempts = CASE WHEN o.delivered_at IS NULL THEN o.attempts ELSE 0 END,
           next_attempt_at = CASE WHEN o.delivered_at IS NULL THEN o.next_attempt_at
                                  ELSE now() END,
           send_again = o.delivered_at IS NULL
      FROM target AS t
     WHERE o.order_id = t.order_id
       AND o.seq >= t.seq
       -- Behind an undelivered event nothing was sent: it goes before the later ones.
       AND t.delivered
 RETURNING o.id, o.order_id, o.seq, o.dead_at
)
SELECT id, order_id, seq FROM target
 UNION
SELECT id, order_id, seq FROM reopened WHERE dead_at IS NULL;
