-- Payments carry metadata: up to 20 string keys with string values, given on create,
-- returned everywhere the payment is, searchable (CONTRACT.md, "Metadata"). The API
-- checks the limits; the database keeps what it can hold of them: an object.
-- A constant default adds the column without rewriting the table; the check is added NOT
-- VALID (enforced for every row written from now on, existing rows all hold '{}') and
-- validated by the next migration without blocking writes.
ALTER TABLE payments
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}',
    ADD CONSTRAINT payments_metadata_object CHECK (jsonb_typeof(metadata) = 'object') NOT VALID;

-- The read side's resource has every column of the payment (migrations/0020).
DROP VIEW payment_resource;
CREATE VIEW payment_resource AS
SELECT p.*,
       COALESCE((SELECT json_agg(json_build_object(
                            'id', r.id, 'payment_id', r.payment_id, 'amount', r.amount,
                            'reason', r.reason, 'status', r.status, 'created_at', r.created_at)
                        ORDER BY r.id)
                   FROM refunds r
                  WHERE r.payment_id = p.id), '[]') AS refunds,
       COALESCE((SELECT json_agg(json_build_object(
                            'transaction_id', a.transaction_id, 'status', a.status,
                            'failure_code', a.failure_code, 'created_at', a.created_at)
                        ORDER BY a.id)
                   FROM payment_attempts a
                  WHERE a.payment_id = p.id), '[]') AS attempts
  FROM payments p;
COMMENT ON VIEW payment_resource IS
    'The payment resource of the API''s read side: every column of the payment, its refunds '
    'and its charge attempts (JSON arrays, oldest first).';
