-- The payment resource of the read side (GET endpoints), refunds included, as
-- one view: the API and operators in psql read the same thing.
CREATE VIEW payment_resource AS
SELECT p.id, p.order_id, p.amount, p.currency, p.status, p.payment_method,
       p.transaction_id, p.created_at, p.updated_at,
       COALESCE((SELECT json_agg(json_build_object(
                            'id', r.id, 'payment_id', r.payment_id, 'amount', r.amount,
                            'reason', r.reason, 'status', r.status, 'created_at', r.created_at)
                        ORDER BY r.id)
                   FROM refunds r
                  WHERE r.payment_id = p.id), '[]') AS refunds
  FROM payments p;
