-- The payment resource of the read side names no column of payments: it is every column
-- of the row (p.*) with the payment's refunds and charge attempts, so the columns are
-- listed once, in the table. PostgreSQL expands p.* when a view is created: a migration
-- that adds a column to payments re-creates this view in the same transaction.
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
