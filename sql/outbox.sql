-- The outbox relay: claiming, recording delivery attempts, waking, retention and the
-- operators' status and replay. Readable and runnable from psql. An event's `attempts`
-- are its delivery attempts (sends that counted), not a payment's charge attempts.

-- name: claim_due_events(relay_id, lease_seconds, max_events)
-- Leases up to max_events due events (view outbox_due, migrations/0027: undelivered,
-- live, past next_attempt_at, unclaimed, the next of their order to send) to one relay,
-- oldest first. The claim clears send_again, the mark of a redelivery that made the
-- event go again. SKIP LOCKED lets any number of relays claim at once without waiting.
-- The body is the exact text to send (migrations/0023; rendered from the jsonb for events
-- queued before body_text existed).
UPDATE outbox AS o
   SET claimed_until = now() + make_interval(secs => CAST(:lease_seconds AS float8)),
       claimed_by = :relay_id,
       send_again = false
 WHERE o.id IN (SELECT id
                  FROM outbox_due
                 ORDER BY seq
                 LIMIT :max_events
                   FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.order_id,
          COALESCE(o.body_text,
                   order_webhook_text(o.body->>'payment_status',
                                      CAST(o.body->>'transaction_id' AS uuid))) AS body,
          o.attempts AS delivery_attempts, o.request_id;

-- name: claim_probe_event(relay_id, lease_seconds)
-- Leases one due event to a relay that holds the Order Service for down, to probe it
-- with (every other probe; the others take the oldest, claim_due_events): the one due
-- the longest, among the same due events (outbox_due) as claim_due_events. A failed probe
-- is due again only after its scheduled delay (record_outcomes), so these probes take the
-- due events in turn, and one the Order Service refuses on its own (a bug for that order)
-- cannot keep the relay paused while the others would get through.
UPDATE outbox AS o
   SET claimed_until = now() + make_interval(secs => CAST(:lease_seconds AS float8)),
       claimed_by = :relay_id,
       send_again = false
 WHERE o.id IN (SELECT id
                  FROM outbox_due
                 ORDER BY next_attempt_at, seq
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.order_id,
          COALESCE(o.body_text,
                   order_webhook_text(o.body->>'payment_status',
                                      CAST(o.body->>'transaction_id' AS uuid))) AS body,
          o.attempts AS delivery_attempts, o.request_id;

-- name: record_outcomes(relay_id, ids, results, errors, delays_seconds, dead)!
-- Records what a relay's sends came to, one statement per batch, one element of each
-- array per claimed event:
--   delivered: accepted by the Order Service (2xx); a delivery attempt counted. An event
--     marked send_again had an earlier event of its order redelivered while this send
--     was in flight (reopen_event): the send does not count, the event stays
--     undelivered and goes again after that one.
--   failed: a delivery attempt counted, the error kept, due again after delay_seconds,
--     or dead after the last delivery attempt.
--   deferred: failed while the Order Service as a whole was failing (the relay's
--     circuit breaker is open): the error is kept for operators, but no delivery
--     attempt is counted, so an outage never uses up an event's attempts; due again after its
--     delay (0 for a send caught in the outage, the scheduled one for a failed probe,
--     so that claim_probe_event takes another event first).
--   released: not sent (the relay is stopping, its lease was too close to its end, or
--     the Order Service is down and another event probes it): given back as it was,
--     so that any relay can take it at once.
-- Every kind ends the claim. All but a delivery only while this relay still holds the
-- claim (once its lease expired another relay may own the event); a delivery always,
-- since the Order Service has it. Idempotent (delivered events are left alone), so a
-- batch retried after a lost connection counts nothing twice.
UPDATE outbox AS o
   SET delivered_at = CASE WHEN f.result = 'delivered' AND NOT o.send_again THEN now()
                           ELSE o.delivered_at END,
       attempts = o.attempts + CASE WHEN f.result = 'failed' THEN 1
                                    WHEN f.result = 'delivered' AND NOT o.send_again THEN 1
                                    ELSE 0 END,
       last_error = CASE WHEN f.result IN ('failed', 'deferred') THEN f.error
                         ELSE o.last_error END,
       last_attempt_at = CASE WHEN f.result = 'released' THEN o.last_attempt_at
                              ELSE now() END,
       next_attempt_at = CASE WHEN f.result IN ('failed', 'deferred')
                              THEN now() + make_interval(secs => f.delay_seconds)
                              ELSE o.next_attempt_at END,
       dead_at = CASE WHEN f.result = 'failed' AND f.dead THEN now() ELSE o.dead_at END,
       claimed_until = NULL,
       claimed_by = NULL
  FROM unnest(CAST(:ids AS uuid[]), CAST(:results AS text[]), CAST(:errors AS text[]),
              CAST(:delays_seconds AS float8[]), CAST(:dead AS boolean[]))
       AS f(id, result, error, delay_seconds, dead)
 WHERE o.id = f.id
   AND o.delivered_at IS NULL
   AND (f.result = 'delivered' OR o.claimed_by = :relay_id);

-- name: release_claims_of_relay(relay_id)$
-- On shutdown: gives back everything this relay still holds; returns how many.
WITH released AS (
    UPDATE outbox
       SET claimed_until = NULL, claimed_by = NULL
     WHERE claimed_by = :relay_id
       AND delivered_at IS NULL
 RETURNING 1
)
SELECT count(*) FROM released;

-- name: wake_relays(sender)$
-- Wakes every listening relay (after commits of outbox rows, or a replay); the
-- relays also poll. `sender` lets a process's own listener skip its own wake-up.
SELECT pg_notify('outbox', CAST(:sender AS text)) IS NULL;

-- name: relay_listener_ping()$
-- Proves the listening connection is still alive.
SELECT 1;

-- name: try_lock_outbox_retention()$
-- One relay at a time runs retention; the lock ends with the transaction.
SELECT pg_try_advisory_xact_lock(hashtext('payments.outbox_retention'));

-- name: purge_delivered_events(retention_days, max_events)$
-- Deletes up to max_events events delivered more than retention_days ago;
-- returns how many. Undelivered events (pending or dead) are never deleted.
WITH purged AS (
    DELETE FROM outbox
     WHERE id IN (
            SELECT id
              FROM outbox
             WHERE delivered_at IS NOT NULL
               AND delivered_at < now() - make_interval(
                       secs => CAST(:retention_days AS float8) * 86400)
             LIMIT :max_events)
 RETURNING 1
)
SELECT count(*) FROM purged;

-- name: outbox_status()^
-- The operators' summary: events waiting, in flight, blocked behind an earlier
-- event of their order, dead, delivered, and how long the oldest waiting one has waited.
SELECT pending, in_flight, blocked, dead,
       (SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL) AS delivered,
       oldest_pending_seconds
  FROM outbox_backlog;

-- name: replay_dead_events(event_id, order_id, dead_since, all_dead)
-- Gives dead events a fresh set of attempts, due now. Filters combine with AND:
-- one event, one order's, those dead since a time, or (all_dead) every one.
-- The last error is kept until the next attempt replaces it.
UPDATE outbox
   SET dead_at = NULL,
       attempts = 0,
       next_attempt_at = now(),
       claimed_until = NULL,
       claimed_by = NULL
 WHERE dead_at IS NOT NULL
   AND delivered_at IS NULL
   AND (CAST(:event_id AS uuid) IS NULL OR id = CAST(:event_id AS uuid))
   AND (CAST(:order_id AS bigint) IS NULL OR order_id = CAST(:order_id AS bigint))
   AND (CAST(:dead_since AS timestamptz) IS NULL
        OR dead_at >= CAST(:dead_since AS timestamptz))
   AND (CAST(:event_id AS uuid) IS NOT NULL OR CAST(:order_id AS bigint) IS NOT NULL
        OR CAST(:dead_since AS timestamptz) IS NOT NULL OR CAST(:all_dead AS boolean))
RETURNING id, order_id, seq;

-- name: retry_waiting_events(event_id, order_id, created_since, all_waiting)
-- Makes waiting events due now: those waiting for their next attempt and those
-- blocked behind an earlier event of their order, together with every earlier
-- undelivered event of their order (else a blocked one would go on waiting); a dead
-- one among those gets a fresh set of attempts, as a replay gives. Attempts already
-- spent are kept. Filters combine with AND: one event, one order's, those queued
-- since a time, or (all_waiting) every one. Events a relay is sending are left alone.
WITH chosen AS (
    SELECT order_id, max(seq) AS up_to_seq
      FROM outbox
     WHERE delivered_at IS NULL
       AND dead_at IS NULL
       AND (CAST(:event_id AS uuid) IS NULL OR id = CAST(:event_id AS uuid))
       AND (CAST(:order_id AS bigint) IS NULL OR order_id = CAST(:order_id AS bigint))
       AND (CAST(:created_since AS timestamptz) IS NULL
            OR created_at >= CAST(:created_since AS timestamptz))
       AND (CAST(:event_id AS uuid) IS NOT NULL OR CAST(:order_id AS bigint) IS NOT NULL
            OR CAST(:created_since AS timestamptz) IS NOT NULL
            OR CAST(:all_waiting AS boolean))
     GROUP BY order_id
), targets AS (
    SELECT e.id, e.dead_at IS NOT NULL AS was_dead
      FROM outbox AS e
      JOIN chosen AS c ON c.order_id = e.order_id AND e.seq <= c.up_to_seq
     WHERE e.delivered_at IS NULL
       AND (e.claimed_until IS NULL OR e.claimed_until < now())
)
UPDATE outbox AS o
   SET next_attempt_at = now(),
       attempts = CASE WHEN t.was_dead THEN 0 ELSE o.attempts END,
       dead_at = NULL,
       claimed_until = NULL,
       claimed_by = NULL
  FROM targets AS t
 WHERE o.id = t.id
RETURNING o.id, o.order_id, o.seq, t.was_dead;
