-- One definition of a due event, which both of the relay's claims take from
-- (sql/outbox.sql claim_due_events, claim_probe_event): they differ only in which due
-- events they take first. Only adds a view: the release before it runs as it did.

-- An event is due when undelivered, not dead, past its next_attempt_at, unclaimed (or its
-- lease expired), and the earliest undelivered event of its order: a later one waits for
-- it, dead ones included, so an order's events never overtake each other. Nor while a
-- later event of its order is claimed (a redelivery reopened this one while that one was
-- being sent): an order has one send in flight at a time. Both checks in one NOT EXISTS,
-- a range of outbox_order each, which stays a probe per candidate: as two, the planner
-- scanned the whole table for live claims. An event a redelivery marked send_again is
-- checked again afresh (outbox_next_of_order, migrations/0016), since a statement reads
-- the earlier events as of its start and a redelivery committed since may have reopened
-- one. A claim selects from it FOR UPDATE SKIP LOCKED, which locks the outbox row (only
-- `c`: the NOT EXISTS reads are not locked), and it still walks outbox_pending in seq
-- order: the view is merged into the claim, not run on its own.
CREATE VIEW outbox_due AS
SELECT c.id, c.order_id, c.seq, c.next_attempt_at
  FROM outbox AS c
 WHERE c.delivered_at IS NULL
   AND c.dead_at IS NULL
   AND c.next_attempt_at <= now()
   AND (c.claimed_until IS NULL OR c.claimed_until < now())
   AND NOT EXISTS (
        SELECT 1
          FROM outbox AS e
         WHERE e.order_id = c.order_id
           AND e.seq < c.seq
           AND e.delivered_at IS NULL
         UNION ALL
        SELECT 1
          FROM outbox AS l
         WHERE l.order_id = c.order_id
           AND l.seq > c.seq
           AND l.claimed_until > now())
   AND CASE WHEN c.send_again THEN outbox_next_of_order(c.order_id, c.seq)
            ELSE true END;
COMMENT ON VIEW outbox_due IS
    'Events a relay may claim now: undelivered, live, past next_attempt_at, unclaimed, and '
    'the next of their order to send (earlier ones delivered, no later one claimed).';
