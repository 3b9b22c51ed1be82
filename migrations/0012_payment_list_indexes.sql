-- GET /api/v1/payments lists newest first (id descending, the primary key serves it);
-- these serve its filters: by status, and by creation time.
CREATE INDEX payments_status_id ON payments (status, id);
CREATE INDEX payments_created_at ON payments (created_at);
