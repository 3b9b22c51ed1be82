-- The outbox: one row per order webhook, written in the same statement or
-- transaction as the status change it reports, delivered by the relay.

CREATE TABLE outbox (
    -- Sent as the `webhook-id` header: the same on every retry, so the Order
    -- Service can deduplicate at-least-once deliveries.
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Commit-independent sequence that orders the events of one order.
    seq              bigint      GENERATED ALWAYS AS IDENTITY CONSTRAINT outbox_seq_key UNIQUE,
    order_id         bigint      NOT NULL,
    payment_id       bigint      NOT NULL REFERENCES payments (id),
    -- The exact webhook body: {"payment_status": ..., "transaction_id": ...}
    body             jsonb       NOT NULL CONSTRAINT outbox_body_status CHECK (
                                     body->>'payment_status' IN ('completed', 'failed', 'refunded')
                                     AND body ? 'transaction_id'),
    -- Carries the request id of the API call that caused the event into the relay's logs.
    request_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- A claim is a lease: a relay that dies mid-batch loses it when it expires.
    claimed_until    timestamptz,
    claimed_by       text,
    delivered_at     timestamptz,
    dead_at          timestamptz,
    last_error       text
);

-- What the relay scans: undelivered, live events in sequence order.
CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
-- Per-order ordering check and "events of one order" ops queries.
CREATE INDEX outbox_order ON outbox (order_id, seq);
-- Retention deletes delivered events by age.
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;

-- Gateway callbacks already applied, by their `webhook-id`: a repeat is a no-op.
CREATE TABLE gateway_events (
    webhook_id      text        PRIMARY KEY,
    transaction_id  uuid        NOT NULL,
    status          text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
