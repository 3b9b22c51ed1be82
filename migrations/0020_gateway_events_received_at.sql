-- Callback ids are purged by age ([gateway] callback_retention_days, in batches): the
-- oldest found without reading the whole table.
CREATE INDEX gateway_events_received_at ON gateway_events (received_at);
