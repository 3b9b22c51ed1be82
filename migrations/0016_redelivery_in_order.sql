-- A redelivery keeps its order's order while a later event of the order is being sent
-- (sql/events.sql reopen_event; sql/outbox.sql claim_due_events, record_deliveries).

-- Set by a redelivery on each later event of the order not delivered yet: a send of it
-- that started before the redelivery does not count (record_deliveries leaves it
-- undelivered, so it goes again after the redelivered event), and a claim takes it only
-- once outbox_next_of_order says so. The claim that takes it clears it. A constant
-- default: no table rewrite.
ALTER TABLE outbox ADD COLUMN send_again boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN outbox.send_again IS
    'A redelivery of an earlier event of its order came since this event was last claimed: '
    'a send of it started before then does not count, it goes again after that event.';

-- Whether the event at `at_seq` is the next of its order to send: every earlier event
-- delivered and no later one under a live claim, as committed when it is called.
-- VOLATILE, so each call reads with a snapshot of its own: a claim statement whose
-- snapshot predates a redelivery, and that meets a later event of that order after the
-- redelivery committed, rechecks the event's new row but not the earlier rows it read
-- before; this call sees them as they are now.
CREATE FUNCTION outbox_next_of_order(of_order bigint, at_seq bigint)
RETURNS boolean
LANGUAGE sql VOLATILE
AS $$
SELECT NOT EXISTS (
    SELECT 1
      FROM outbox AS e
     WHERE e.order_id = of_order
       AND ((e.seq < at_seq AND e.delivered_at IS NULL)
            OR (e.seq > at_seq AND e.claimed_until > now())))
$$;
COMMENT ON FUNCTION outbox_next_of_order(bigint, bigint) IS
    'Whether the event at at_seq is its order''s next to send (earlier ones delivered, no '
    'later one claimed), read afresh: the claim''s check of an event a redelivery marked.';
