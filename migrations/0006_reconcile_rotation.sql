-- When the reconciler last asked the gateway about a payment still PROCESSING.
-- The reconciler takes the least recently asked first, so payments the gateway
-- cannot settle yet never starve the others.
ALTER TABLE payments ADD COLUMN reconcile_checked_at timestamptz;

DROP INDEX payments_processing_since;
CREATE INDEX payments_processing_since
    ON payments (reconcile_checked_at NULLS FIRST, updated_at) WHERE status = 'PROCESSING';
