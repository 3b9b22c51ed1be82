-- Operators' views: the questions asked from psql, answered without reading the code.
-- `\dv ops.*` lists them and `\d+ ops.<view>` shows the question each answers;
-- sql/ops.sql runs the same views by name (`payments ops`).
-- Days are calendar days in the session's TimeZone: `SET TIME ZONE 'Asia/Tokyo'` for JST days.

CREATE SCHEMA ops;
COMMENT ON SCHEMA ops IS 'Read-only views for operators: payments, refunds, outbox delivery.';

CREATE VIEW ops.payments_by_status_day AS
SELECT CAST(created_at AS date) AS day, status, count(*) AS count, sum(amount) AS total_jpy
  FROM payments
 GROUP BY 1, 2
 ORDER BY day DESC, status;
COMMENT ON VIEW ops.payments_by_status_day IS
    'How many payments were made each day, and for how many yen, by their status now?';

CREATE VIEW ops.processing_payments AS
SELECT id AS payment_id, order_id, amount AS amount_jpy, transaction_id, created_at,
       updated_at, now() - updated_at AS age,
       CAST(extract(epoch FROM now() - updated_at) AS float8) AS age_seconds
  FROM payments
 WHERE status = 'PROCESSING'
 ORDER BY updated_at;
COMMENT ON VIEW ops.processing_payments IS
    'Which payments are waiting for the gateway right now, and for how long?';

-- The reconciler settles these after gateway.reconcile_after_seconds (60 s by default):
-- a payment here for long means no gateway callback came and the reconciler is not running.
CREATE VIEW ops.stuck_payments AS
SELECT *
  FROM ops.processing_payments
 WHERE age > interval '1 minute';
COMMENT ON VIEW ops.stuck_payments IS
    'Which payments have been PROCESSING for more than a minute (callback lost, process crashed)?';

CREATE VIEW ops.refunds_by_day AS
SELECT CAST(created_at AS date) AS day, count(*) AS count, sum(amount) AS total_jpy
  FROM refunds
 GROUP BY 1
 ORDER BY day DESC;
COMMENT ON VIEW ops.refunds_by_day IS 'How many refunds were made each day, and for how many yen?';

-- pending: not delivered and not dead (the relay still tries); in_flight: pending and
-- claimed by a live relay lease; retrying: pending after at least one failed attempt.
CREATE VIEW ops.outbox_backlog AS
SELECT count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL) AS pending,
       now() - min(created_at) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL)
           AS oldest_pending_age,
       CAST(extract(epoch FROM now() - min(created_at) FILTER (
                WHERE delivered_at IS NULL AND dead_at IS NULL)) AS float8)
           AS oldest_pending_seconds,
       count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL
                          AND claimed_until > now()) AS in_flight,
       count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL
                          AND attempts > 0) AS retrying,
       count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NOT NULL) AS dead,
       count(*) FILTER (WHERE delivered_at > now() - interval '1 hour') AS delivered_last_hour
  FROM outbox;
COMMENT ON VIEW ops.outbox_backlog IS
    'How far behind is webhook delivery: events waiting, the oldest one''s wait, in flight, '
    'retrying, dead, and delivered in the last hour?';

CREATE VIEW ops.dead_events AS
SELECT id, order_id, payment_id, body, attempts, dead_at, last_error, created_at, request_id
  FROM outbox
 WHERE dead_at IS NOT NULL AND delivered_at IS NULL
 ORDER BY dead_at DESC;
COMMENT ON VIEW ops.dead_events IS
    'Which order webhooks gave up after the last retry, and with what error? '
    '(replay: payments outbox replay)';

-- Dead events only appear after the last retry (hours, by default); while the Order
-- Service is down, this is where the reason shows first.
CREATE VIEW ops.undelivered_events AS
SELECT id, order_id, payment_id, body->>'payment_status' AS payment_status,
       CASE WHEN dead_at IS NOT NULL THEN 'dead'
            WHEN claimed_until > now() THEN 'in flight'
            WHEN attempts > 0 THEN 'retrying'
            ELSE 'pending' END AS state,
       attempts, now() - created_at AS age,
       CASE WHEN dead_at IS NULL THEN next_attempt_at END AS next_attempt_at,
       claimed_by, last_error
  FROM outbox
 WHERE delivered_at IS NULL
 ORDER BY seq;
COMMENT ON VIEW ops.undelivered_events IS
    'Which order webhooks are not delivered yet, in what state, and what was the last error?';

CREATE VIEW ops.delivery_attempts_by_order AS
SELECT order_id,
       count(*) AS events,
       sum(attempts) AS attempts,
       count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
       count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL) AS pending,
       count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NOT NULL) AS dead,
       (array_agg(last_error ORDER BY seq DESC) FILTER (WHERE last_error IS NOT NULL))[1]
           AS last_error,
       max(created_at) AS last_event_at
  FROM outbox
 GROUP BY order_id
 ORDER BY order_id;
COMMENT ON VIEW ops.delivery_attempts_by_order IS
    'For each order: how many webhooks, how many attempts, how many delivered, pending, dead, '
    'and the latest error?';

-- One row per thing that happened to an order, oldest first; `step` orders the rows
-- of one statement (settle and its webhook share a timestamp). A webhook's row shows
-- its delivery state, finished_at (delivered or dead) and last error in `detail`;
-- a refund's `detail` is its reason. `ref` names the row's
-- own object: the transaction id, the refund id, the gateway callback's webhook-id,
-- or the webhook's `webhook-id` (outbox id) the Order Service saw.
-- The timeline joins gateway callbacks to their payment by transaction id.
CREATE INDEX gateway_events_transaction ON gateway_events (transaction_id);

CREATE VIEW ops.order_timeline AS
WITH settled AS (
    -- A settlement leaves no timestamp of its own: its webhook's, else updated_at
    -- (unless a refund moved it since), else the refund's (it came before).
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
                WHEN o.attempts > 0 THEN 'retrying'
                ELSE 'pending' END,
           o.attempts, COALESCE(o.delivered_at, o.dead_at), o.last_error, o.id::text
      FROM outbox o
) AS timeline
ORDER BY order_id, at, step;
COMMENT ON VIEW ops.order_timeline IS
    'What happened to an order, in order: payment created, gateway callbacks, settled, refund, '
    'and each webhook with its delivery state? (WHERE order_id = N)';
