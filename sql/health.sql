-- Health checks.

-- name: ping()$
-- Answers 1 when the database serves queries.
SELECT 1;

-- name: outbox_lag()^
-- Undelivered live events, the age in seconds of the oldest (0 when none), dead events.
SELECT count(*) FILTER (WHERE dead_at IS NULL) AS pending,
       COALESCE(EXTRACT(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL)), 0)
           ::float8 AS oldest_age_seconds,
       count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead
  FROM outbox
 WHERE delivered_at IS NULL;
