-- migrate: no-transaction
-- Callback ids are purged by age ([gateway] callback_retention_days, in batches): the
-- oldest found without reading the whole table. Built CONCURRENTLY, so callbacks keep
-- being recorded meanwhile (IF NOT EXISTS: a run that stopped half-way can be repeated).
CREATE INDEX CONCURRENTLY IF NOT EXISTS gateway_events_received_at
    ON gateway_events (received_at);
