-- Blocked events: an undelivered event waits while an earlier event of its order is
-- undelivered (dead, failing, or simply not sent yet), which is the claim's ordering
-- rule (sql/outbox.sql, claim_due_events). Operators saw such events as "pending"
-- with 0 attempts, for ever behind a dead one; every reader now says "blocked".

-- The one definition of "blocked" the views share: each live undelivered event that
-- waits, and the earliest undelivered event of its order it waits for.
CREATE VIEW outbox_blocked AS
SELECT o.id, b.id AS blocked_by
  FROM outbox AS o
 CROSS JOIN LATERAL (
        SELECT e.id
          FROM outbox AS e
         WHERE e.order_id = o.order_id
           AND e.seq < o.seq
           AND e.delivered_at IS NULL
         ORDER BY e.seq
         LIMIT 1) AS b
 WHERE o.delivered_at IS NULL
   AND o.dead_at IS NULL;
COMMENT ON VIEW outbox_blocked IS
    'Undelivered live events waiting behind an earlier undelivered event of their order '
    '(blocked_by: the earliest one).';

-- blocked: pending events that wait behind an earlier event of their order (a part of
-- pending, as in_flight and retrying are).
CREATE OR REPLACE VIEW outbox_backlog AS
SELECT count(*) FILTER (WHERE o.dead_at IS NULL) AS pending,
       now() - min(o.created_at) FILTER (WHERE o.dead_at IS NULL) AS oldest_pending_age,
       CAST(extract(epoch FROM now() - min(o.created_at) FILTER (WHERE o.dead_at IS NULL))
            AS float8) AS oldest_pending_seconds,
       count(*) FILTER (WHERE o.dead_at IS NULL AND o.claimed_until > now()) AS in_flight,
       count(*) FILTER (WHERE o.dead_at IS NULL AND o.attempts > 0) AS retrying,
       count(*) FILTER (WHERE o.dead_at IS NOT NULL) AS dead,
       count(b.id) AS blocked
  FROM outbox AS o
  LEFT JOIN outbox_blocked AS b ON b.id = o.id
 WHERE o.delivered_at IS NULL;
COMMENT ON VIEW outbox_backlog IS
    'Undelivered order webhooks: pending, the oldest one''s wait, in flight, retrying, dead, '
    'blocked behind an earlier event of their order.';

CREATE OR REPLACE VIEW ops.outbox_backlog AS
SELECT b.pending, b.oldest_pending_age, b.oldest_pending_seconds, b.in_flight, b.retrying,
       b.dead,
       (SELECT count(*) FROM outbox
         WHERE delivered_at > now() - interval '1 hour') AS delivered_last_hour,
       b.blocked
  FROM outbox_backlog b;
COMMENT ON VIEW ops.outbox_backlog IS
    'How far behind is webhook delivery: events waiting, the oldest one''s wait, in flight, '
    'retrying, dead, delivered in the last hour, and blocked behind an earlier event of their '
    'order?';

CREATE OR REPLACE VIEW ops.undelivered_events AS
SELECT o.id, o.order_id, o.payment_id, o.body->>'payment_status' AS payment_status,
       CASE WHEN o.dead_at IS NOT NULL THEN 'dead'
            WHEN o.claimed_until > now() THEN 'in flight'
            WHEN b.id IS NOT NULL THEN 'blocked'
            WHEN o.attempts > 0 THEN 'retrying'
            ELSE 'pending' END AS state,
       o.attempts, now() - o.created_at AS age,
       CASE WHEN o.dead_at IS NULL THEN o.next_attempt_at END AS next_attempt_at,
       o.claimed_by, o.last_error, b.blocked_by
  FROM outbox AS o
  LEFT JOIN outbox_blocked AS b ON b.id = o.id
 WHERE o.delivered_at IS NULL
 ORDER BY o.seq;
COMMENT ON VIEW ops.undelivered_events IS
    'Which order webhooks are not delivered yet, in what state (blocked: behind blocked_by), '
    'and what was the last error?';

-- last_error is a current problem only while an event is undelivered; the error an
-- event met before it got through is history (last_error_before_delivery).
CREATE OR REPLACE VIEW ops.delivery_attempts_by_order AS
SELECT o.order_id,
       count(*) AS events,
       sum(o.attempts) AS attempts,
       count(*) FILTER (WHERE o.delivered_at IS NOT NULL) AS delivered,
       count(*) FILTER (WHERE o.delivered_at IS NULL AND o.dead_at IS NULL) AS pending,
       count(*) FILTER (WHERE o.delivered_at IS NULL AND o.dead_at IS NOT NULL) AS dead,
       (array_agg(o.last_error ORDER BY o.seq DESC)
            FILTER (WHERE o.last_error IS NOT NULL AND o.delivered_at IS NULL))[1]
           AS last_error,
       max(o.created_at) AS last_event_at,
       (array_agg(o.last_error ORDER BY o.seq DESC)
            FILTER (WHERE o.last_error IS NOT NULL AND o.delivered_at IS NOT NULL))[1]
           AS last_error_before_delivery,
       count(b.id) AS blocked
  FROM outbox AS o
  LEFT JOIN outbox_blocked AS b ON b.id = o.id
 GROUP BY o.order_id
 ORDER BY o.order_id;
COMMENT ON VIEW ops.delivery_attempts_by_order IS
    'For each order: how many webhooks, how many attempts, how many delivered, pending, dead, '
    'blocked, the error of the undelivered ones, and the last error met before a delivery?';

CREATE OR REPLACE VIEW ops.order_timeline AS
WITH settled AS (
    SELECT p.id, p.order_id, p.amount, p.transaction_id,
           CASE WHEN p.status = 'FAILED' THEN 'FAILED' ELSE 'COMPLETED' END AS status,
           COALESCE((SELECT min(o.created_at) FROM outbox o
                      WHERE o.payment_id = p.id
                        AND o.body->>'payment_status' IN ('completed', 'failed')),
                    CASE WHEN p.status <> 'REFUNDED' THEN p.updated_at END,
                    (SELECT min(r.created_at) FROM refunds r WHERE r.payment_id = p.id)) AS at
      FROM payments p
     WHERE p.status IN ('COMPLETED', 'FAILED', 'REFUNDED')
)
SELECT * FROM (
    SELECT p.order_id, p.created_at AS at, 1 AS step, 'payment created' AS what,
           p.id AS payment_id, p.amount AS amount_jpy, 'now ' || p.status AS state,
           NULL::integer AS attempts, NULL::timestamptz AS finished_at,
           NULL::text AS detail, p.transaction_id::text AS ref
      FROM payments p
    UNION ALL
    SELECT p.order_id, g.received_at, 2, 'gateway callback ' || g.status,
           p.id, NULL, NULL, NULL, NULL, NULL, g.webhook_id
      FROM gateway_events g JOIN payments p ON p.transaction_id = g.transaction_id
    UNION ALL
    SELECT s.order_id, s.at, 3, 'payment ' || lower(s.status),
           s.id, s.amount, s.status, NULL, NULL, NULL, s.transaction_id::text
      FROM settled s
    UNION ALL
    SELECT p.order_id, r.created_at, 4, 'refund',
           p.id, r.amount, r.status, NULL, NULL, 'reason: ' || r.reason, r.id::text
      FROM refunds r JOIN payments p ON p.id = r.payment_id
    UNION ALL
    SELECT o.order_id, o.created_at, 5, 'webhook ' || (o.body->>'payment_status'),
           o.payment_id, NULL,
           CASE WHEN o.delivered_at IS NOT NULL THEN 'delivered'
                WHEN o.dead_at IS NOT NULL THEN 'dead'
                WHEN o.claimed_until > now() THEN 'in flight'
                WHEN b.id IS NOT NULL THEN 'blocked'
                WHEN o.attempts > 0 THEN 'retrying'
                ELSE 'pending' END,
           o.attempts, COALESCE(o.delivered_at, o.dead_at), o.last_error, o.id::text
      FROM outbox o LEFT JOIN outbox_blocked b ON b.id = o.id
) AS timeline
ORDER BY order_id, at, step;
