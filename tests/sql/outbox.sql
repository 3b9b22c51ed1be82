-- Test helpers for the outbox: the queued order webhooks read directly, and delivery
-- states set by hand, without a relay.

-- name: count_outbox_events()$
-- How many order webhooks were queued at all (one per status change).
SELECT count(*) FROM outbox;

-- name: outbox_events_of_payment(payment_id)
-- Every order webhook queued for one payment, oldest first.
SELECT id, seq, order_id, payment_id, body::text AS body, attempts, delivered_at, dead_at,
       last_error
  FROM outbox
 WHERE payment_id = :payment_id
 ORDER BY seq;

-- name: outbox_events_of_order(order_id)
-- Every order webhook queued for one order, oldest first.
SELECT id, seq, order_id, payment_id, body::text AS body, attempts, delivered_at, dead_at,
       last_error
  FROM outbox
 WHERE order_id = :order_id
 ORDER BY seq;

-- name: all_outbox_events()
-- Every event with its delivery state, oldest first.
SELECT id, seq, order_id, payment_id, body::text AS body, request_id, attempts,
       next_attempt_at, last_attempt_at, claimed_until, claimed_by, delivered_at, dead_at,
       last_error
  FROM outbox
 ORDER BY seq;

-- name: all_outbox_events_decoded()
-- Every event with what its body says (status, transaction id) and its delivery state,
-- oldest first; ids as text.
SELECT CAST(id AS text) AS id, seq, order_id, payment_id,
       body->>'payment_status' AS payment_status,
       body->>'transaction_id' AS transaction_id,
       request_id, attempts, delivered_at, dead_at, last_error
  FROM outbox
 ORDER BY seq;

-- name: claimed_outbox_events()
-- Events some relay holds a claim on (live or expired), oldest first.
SELECT id, seq, order_id, attempts, claimed_until, claimed_by
  FROM outbox
 WHERE claimed_by IS NOT NULL
 ORDER BY seq;

-- name: outbox_counts()^
-- Events not yet delivered and alive, dead, delivered; and how many attempts in all.
SELECT count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL) AS pending,
       count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NOT NULL) AS dead,
       count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
       COALESCE(sum(attempts), 0) AS attempts
  FROM outbox;

-- name: mark_event_delivered(event_id)!
-- Marks an event delivered on its first attempt.
UPDATE outbox
   SET delivered_at = now(), attempts = attempts + 1, claimed_until = NULL, claimed_by = NULL
 WHERE id = CAST(:event_id AS uuid);

-- name: mark_event_retrying(event_id, attempts, error)!
-- Marks an event failed `attempts` times, the next try due in ten minutes.
UPDATE outbox
   SET attempts = CAST(:attempts AS integer), last_error = :error,
       next_attempt_at = now() + interval '10 minutes'
 WHERE id = CAST(:event_id AS uuid);

-- name: mark_event_dead(event_id, attempts, error)!
-- Marks an event dead after `attempts` failed attempts.
UPDATE outbox
   SET attempts = CAST(:attempts AS integer), last_error = :error, dead_at = now()
 WHERE id = CAST(:event_id AS uuid);

-- name: mark_event_claimed(event_id, relay_id)!
-- Leases an event to a relay for a minute (a delivery in flight).
UPDATE outbox
   SET claimed_until = now() + interval '1 minute', claimed_by = :relay_id
 WHERE id = CAST(:event_id AS uuid);

-- name: age_delivered_event(event_id, days)!
-- Pretends an event was delivered `days` ago (tests of retention).
UPDATE outbox
   SET delivered_at = now() - make_interval(secs => CAST(:days AS float8) * 86400)
 WHERE id = CAST(:event_id AS uuid);

-- name: allow_blank_event_bodies()!
-- Lets an event's body be NULL, as no service statement ever writes it: a row the
-- relay cannot make sense of (schema drift, a hand edit), to crash it for real.
ALTER TABLE outbox ALTER COLUMN body DROP NOT NULL;

-- name: insert_blank_event(order_id, payment_id)$
-- Queues an event with a NULL body (after allow_blank_event_bodies); returns its id.
INSERT INTO outbox (order_id, payment_id, body) VALUES (:order_id, :payment_id, NULL)
RETURNING id;

-- name: set_event_body(event_id, body)!
-- Sets one event's body by hand (mending a blank one).
UPDATE outbox SET body = CAST(:body AS jsonb) WHERE id = CAST(:event_id AS uuid);

-- name: lock_outbox()!
-- Nobody else reads the outbox until this transaction ends (a database that does not answer).
LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE;

-- name: queue_undelivered_events(payment_id, count)!
-- Queues `count` undelivered order webhooks at once, one order each (a backlog an Order
-- Service outage leaves), all reporting the one payment given.
INSERT INTO outbox (order_id, payment_id, body)
SELECT 1000000000 + n, :payment_id, order_webhook_body('COMPLETED', gen_random_uuid())
  FROM generate_series(1, :count) AS n;

-- name: event_body_text(event_id)$
-- The exact text the relay will send for an event (NULL: rendered from body at claim).
SELECT body_text FROM outbox WHERE id = CAST(:event_id AS uuid);

-- name: set_event_body_text(event_id, body_text)!
-- Sets the exact text to send for one event by hand (NULL: as an event queued before
-- migrations/0023, or by the release before it, is).
UPDATE outbox SET body_text = :body_text WHERE id = CAST(:event_id AS uuid);
