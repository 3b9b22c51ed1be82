-- Read side: the payment resource as clients see it, refunds included
-- (view `payment_resource`, migrations/0003). Never used by the write side.

-- name: payment_by_id(payment_id)^
-- One payment with its refunds (a JSON array, oldest first).
SELECT * FROM payment_resource WHERE id = :payment_id;

-- name: payment_by_order(order_id)^
-- The payment of one order (1:1) with its refunds.
SELECT * FROM payment_resource WHERE order_id = :order_id;

-- name: list_payments(status, created_gte, created_lt, starting_after, max_rows)
-- A page of payments with their refunds, newest first (id descending), continuing
-- after the payment `starting_after`; each filter applies when given. Keyset paging,
-- no OFFSET: a page costs the same however deep, and payments created meanwhile
-- (higher ids) never shift the pages after the first.
SELECT *
  FROM payment_resource
 WHERE (CAST(:status AS text) IS NULL OR status = CAST(:status AS text))
   AND (CAST(:created_gte AS timestamptz) IS NULL
        OR created_at >= CAST(:created_gte AS timestamptz))
   AND (CAST(:created_lt AS timestamptz) IS NULL
        OR created_at < CAST(:created_lt AS timestamptz))
   AND (CAST(:starting_after AS bigint) IS NULL OR id < CAST(:starting_after AS bigint))
 ORDER BY id DESC
 LIMIT :max_rows;
