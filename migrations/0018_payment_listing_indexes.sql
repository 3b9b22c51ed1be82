-- migrate: no-transaction
-- The payments list's order, (created_xid, id) newest first (migrations/0017): for
-- everyone's payments, and within one status (its filter). Built CONCURRENTLY, so the
-- table takes payments meanwhile; outside a transaction, so IF NOT EXISTS makes a run
-- that stopped half-way safe to repeat (the runner drops an index left INVALID first).
-- payments_status_id (0012) still serves the list of the release before this one, which
-- pages by id; a later release drops it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS payments_listing ON payments (created_xid, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS payments_status_listing
    ON payments (status, created_xid, id);
