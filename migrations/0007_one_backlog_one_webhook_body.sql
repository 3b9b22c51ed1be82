-- Facts the statements and views share, defined once.

-- The order webhook's body (the contract: exactly these two keys), built by every
-- statement that queues one: settling a payment, refunding it.
CREATE FUNCTION order_webhook_body(payment_status text, transaction_id uuid)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT jsonb_build_object('payment_status', lower(payment_status),
                                'transaction_id', transaction_id) $$;
COMMENT ON FUNCTION order_webhook_body(text, uuid) IS
    'The body of the order webhook reporting a payment status: {"payment_status", "transaction_id"}.';

-- The outbox backlog: what readiness, the metrics gauges, `payments outbox status` and
-- the operators' view all report. Only undelivered rows are read (the outbox_pending
-- and outbox_order indexes keep that cheap however many delivered rows retention holds).
-- pending: not delivered and not dead (the relay still tries); in_flight: pending and
-- claimed by a live relay lease; retrying: pending after at least one failed attempt.
CREATE VIEW outbox_backlog AS
SELECT count(*) FILTER (WHERE dead_at IS NULL) AS pending,
       now() - min(created_at) FILTER (WHERE dead_at IS NULL) AS oldest_pending_age,
       CAST(extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL))
            AS float8) AS oldest_pending_seconds,
       count(*) FILTER (WHERE dead_at IS NULL AND claimed_until > now()) AS in_flight,
       count(*) FILTER (WHERE dead_at IS NULL AND attempts > 0) AS retrying,
       count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead
  FROM outbox
 WHERE delivered_at IS NULL;
COMMENT ON VIEW outbox_backlog IS
    'Undelivered order webhooks: pending, the oldest one''s wait, in flight, retrying, dead.';

CREATE OR REPLACE VIEW ops.outbox_backlog AS
SELECT b.pending, b.oldest_pending_age, b.oldest_pending_seconds, b.in_flight, b.retrying,
       b.dead,
       (SELECT count(*) FROM outbox
         WHERE delivered_at > now() - interval '1 hour') AS delivered_last_hour
  FROM outbox_backlog b;
