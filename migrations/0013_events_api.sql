-- The events API (GET /api/v1/events): the outbox read as a list of order webhooks,
-- oldest first, in keyset pages that never skip an event committed late.

-- When the relay last sent the event (recorded with the outcome of that send: delivered,
-- failed, or failed while the Order Service as a whole was down). NULL: never sent, or
-- sent only before this column existed (the listing falls back on delivered_at/dead_at).
ALTER TABLE outbox ADD COLUMN last_attempt_at timestamptz;

-- The transaction that queued the event. seq is drawn at INSERT, not at commit: a
-- transaction can hold seq 9 uncommitted while seq 10 commits, and a reader paging by seq
-- would pass 9 for good. The listing shows only events of transactions older than every
-- transaction still running (pg_snapshot_xmin) and orders by (created_xid, seq), so an
-- event that commits later always sorts after what a client has already paged past.
-- Rows queued before this migration read as 0 (a constant default costs no rewrite);
-- the default for new rows is then their own transaction's id.
ALTER TABLE outbox ADD COLUMN created_xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE outbox ALTER COLUMN created_xid SET DEFAULT pg_current_xact_id();
COMMENT ON COLUMN outbox.created_xid IS
    'Transaction that queued the event: the events API''s commit-safe order (with seq).';

-- The listing for everyone, in its order; a page of one order uses outbox_order.
CREATE INDEX outbox_listing ON outbox (created_xid, seq);
