-- Health checks.

-- name: ping()$
-- Answers 1 when the database serves queries.
SELECT 1;

-- name: outbox_lag()^
-- Undelivered live events and the age in seconds of the oldest (0 when none).
SELECT count(*) AS pending,
       COALESCE(EXTRACT(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age_seconds
  FROM outbox
 WHERE delivered_at IS NULL AND dead_at IS NULL;
