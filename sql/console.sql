-- The operator console (service/api/console/): the overview's figures and charts, the
-- events that need an operator, and the console's replay jobs. Readable and runnable
-- from psql; the payments and events themselves are read as the API reads them.

-- name: console_payment_totals()
-- Payments created in the last day, by their status now: how many and how many yen, in
-- the last hour and in the last day (index payments_created_at).
SELECT status,
       count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS hour_count,
       COALESCE(sum(amount) FILTER (WHERE created_at > now() - interval '1 hour'), 0)
           AS hour_amount,
       count(*) AS day_count,
       sum(amount) AS day_amount
  FROM payments
 WHERE created_at > now() - interval '1 day'
 GROUP BY status
 ORDER BY status;

-- name: console_manual_review(max_rows)
-- The payments flagged for manual review, longest undecided first
-- (view ops.payments_for_manual_review).
SELECT payment_id, order_id, amount_jpy AS amount, processing_since, flagged_at,
       last_asked_at
  FROM ops.payments_for_manual_review
 ORDER BY processing_since
 LIMIT :max_rows;

-- name: console_payments_per_minute()
-- Payments created in each of the last 60 minutes (the current one last), by their status
-- now: one row per minute and status, and one with a NULL status for a minute without any.
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes',
                           date_trunc('minute', now()), interval '1 minute') AS minute
)
SELECT m.minute, p.status, count(p.id) AS count
  FROM minutes AS m
  LEFT JOIN payments AS p
    ON p.created_at >= m.minute AND p.created_at < m.minute + interval '1 minute'
 GROUP BY m.minute, p.status
 ORDER BY m.minute, p.status;

-- name: console_delivery_lag_per_minute()
-- How long order webhooks took from being queued (created_at) to being delivered
-- (delivered_at), for those delivered in each of the last 60 minutes: how many, the
-- median and the 99th percentile in seconds (NULL for a minute without deliveries).
-- The row whose minute is NULL is the whole hour's (index outbox_delivered).
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes',
                           date_trunc('minute', now()), interval '1 minute') AS minute
)
SELECT m.minute, count(o.id) AS delivered,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY CAST(extract(epoch FROM o.delivered_at - o.created_at) AS float8))
           AS p50_seconds,
       percentile_cont(0.99) WITHIN GROUP (
           ORDER BY CAST(extract(epoch FROM o.delivered_at - o.created_at) AS float8))
           AS p99_seconds
  FROM minutes AS m
  LEFT JOIN outbox AS o
    ON o.delivered_at >= m.minute AND o.delivered_at < m.minute + interval '1 minute'
 GROUP BY GROUPING SETS ((m.minute), ())
 ORDER BY m.minute NULLS LAST;

-- name: console_stuck_events(max_rows)
-- The events that need an operator, newest first: dead ones, and those blocked behind an
-- earlier undelivered event of their order (blocked_by, view outbox_blocked), with their
-- delivery attempts and last error.
SELECT o.id, o.order_id, o.payment_id, 'payment.' || (o.body->>'payment_status') AS type,
       o.created_at,
       CASE WHEN o.dead_at IS NOT NULL THEN 'dead' ELSE 'blocked' END AS state,
       o.attempts, COALESCE(o.last_attempt_at, o.dead_at) AS last_attempt_at, o.dead_at,
       o.last_error, b.blocked_by
  FROM outbox AS o
  LEFT JOIN outbox_blocked AS b ON b.id = o.id
 WHERE o.delivered_at IS NULL
   AND (o.dead_at IS NOT NULL OR b.id IS NOT NULL)
 ORDER BY o.seq DESC
 LIMIT :max_rows;

-- name: record_replay_job(started_by, dead_since, event_ids)$
-- Keeps a console job that replayed the dead events `event_ids` (those dead since
-- `dead_since`), started by the token fingerprint `started_by`; returns its id.
INSERT INTO console_jobs (kind, started_by, dead_since, event_ids)
VALUES ('replay_dead_events', :started_by, :dead_since, CAST(:event_ids AS uuid[]))
RETURNING id;

-- name: console_replay_jobs(job_id, max_rows)
-- The latest replay jobs, newest first (one job: job_id; every job: NULL), each with how
-- far it got, read live from the outbox: its events delivered (or deleted since, which
-- only delivered events are, after retention), dead again, or still pending.
SELECT j.id, j.started_at, j.started_by, j.dead_since, cardinality(j.event_ids) AS events,
       cardinality(j.event_ids) - s.dead - s.pending AS delivered, s.dead, s.pending
  FROM console_jobs AS j
 CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE o.delivered_at IS NULL AND o.dead_at IS NOT NULL) AS dead,
               count(*) FILTER (WHERE o.delivered_at IS NULL AND o.dead_at IS NULL) AS pending
          FROM outbox AS o
         WHERE o.id = ANY (j.event_ids)) AS s
 WHERE (CAST(:job_id AS bigint) IS NULL OR j.id = CAST(:job_id AS bigint))
 ORDER BY j.id DESC
 LIMIT :max_rows;
