-- The payments list (GET /api/v1/payments) in keyset pages that never skip a payment that
-- commits late, as the events list does (migrations/0013). A payment's id is drawn at
-- INSERT, not at commit: a create can hold id 9 uncommitted while id 10 commits, and a
-- client paging newest first past 10 and on below 9 would never see 9. The list shows
-- only payments of transactions older than every transaction still running
-- (pg_snapshot_xmin) and orders them by (created_xid, id), newest first, so a payment
-- that commits later sorts before everything a client has paged through.

-- Rows made before this migration read as 0 (a constant default costs no rewrite of
-- the table, only a brief lock): they come last, in id order. The default for new rows
-- is then their own transaction's id; the release before this one inserts through it
-- too. Its indexes are built without blocking writes by 0018.
ALTER TABLE payments ADD COLUMN created_xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE payments ALTER COLUMN created_xid SET DEFAULT pg_current_xact_id();
COMMENT ON COLUMN payments.created_xid IS
    'Transaction that created the payment: the payments list''s commit-safe order (with id).';
