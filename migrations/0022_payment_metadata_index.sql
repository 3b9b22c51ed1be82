-- migrate: no-transaction
-- The payments list filters by metadata (`metadata[KEY]=VALUE`: containment, @>): a GIN
-- index of the jsonb_path_ops kind, the smaller one that serves exactly @>. Built
-- CONCURRENTLY, so payments keep being written meanwhile; IF NOT EXISTS makes a run that
-- stopped half-way safe to repeat (the runner drops an index left INVALID first).
CREATE INDEX CONCURRENTLY IF NOT EXISTS payments_metadata
    ON payments USING gin (metadata jsonb_path_ops);
-- The check of migrations/0021 over the rows written before it, under a lock that lets
-- reads and writes go on.
ALTER TABLE payments VALIDATE CONSTRAINT payments_metadata_object;
