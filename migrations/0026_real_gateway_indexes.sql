-- migrate: no-transaction
-- What migrations/0025 leaves to be done without blocking writes: its checks validated
-- over the rows written before it, and the indexes a real gateway needs, built
-- CONCURRENTLY (IF NOT EXISTS: a run that stopped half-way is safe to repeat; the runner
-- drops an index left INVALID first).

ALTER TABLE payment_attempts VALIDATE CONSTRAINT payment_attempts_status_known;
ALTER TABLE refunds VALIDATE CONSTRAINT refunds_status_known;

-- One refund of a payment at a time, and one that completed: a FAILED refund leaves room
-- for another. It replaces migrations/0001's one-refund-per-payment constraint, dropped
-- once it stands.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS refunds_one_live_per_payment
    ON refunds (payment_id) WHERE status IN ('PENDING', 'COMPLETED');
ALTER TABLE refunds DROP CONSTRAINT IF EXISTS refunds_one_per_payment;
-- The read side lists a payment's refunds, oldest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS refunds_payment ON refunds (payment_id, id);

-- The reconciler's work: refunds the gateway has not settled, and payments it has not
-- decided (PROCESSING, or PENDING: waiting for their buyer), each oldest first. The
-- second takes over from migrations/0006's index of PROCESSING payments, dropped once it
-- stands.
CREATE INDEX CONCURRENTLY IF NOT EXISTS refunds_pending
    ON refunds (created_at) WHERE status = 'PENDING';
CREATE INDEX CONCURRENTLY IF NOT EXISTS payments_undecided
    ON payments (status, reconcile_checked_at NULLS FIRST, updated_at)
    WHERE status IN ('PROCESSING', 'PENDING');
DROP INDEX CONCURRENTLY IF EXISTS payments_processing_since;
