-- Health checks.

-- name: outbox_lag()^
-- Undelivered live events, the age in seconds of the oldest (0 when none), dead events,
-- events blocked behind an earlier event of their order, events being sent now.
SELECT pending, COALESCE(oldest_pending_seconds, 0) AS oldest_age_seconds, dead, blocked,
       in_flight
  FROM outbox_backlog;
