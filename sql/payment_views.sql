-- Read side: the payment resource as clients see it, refunds included
-- (view `payment_resource`, migrations/0020). Never used by the write side.

-- name: payment_by_id(payment_id)^
-- One payment with its refunds (a JSON array, oldest first).
SELECT * FROM payment_resource WHERE id = :payment_id;

-- name: payment_by_order(order_id)^
-- The payment of one order (1:1) with its refunds.
SELECT * FROM payment_resource WHERE order_id = :order_id;

-- name: payment_list_cursor(payment_id)^
-- Where the payments list continues after the payment `payment_id`: its place in the
-- list's order (created_xid, id), and whether this server lists it yet (`listed`: every
-- transaction older than the one that created it has ended here). None: no such
-- payment here.
SELECT created_xid, id, created_xid < pg_snapshot_xmin(pg_current_snapshot()) AS listed
  FROM payments
 WHERE id = :payment_id;

-- name: list_payments(status, created_gte, created_lt, metadata, after_xid, after_id, max_rows)
-- A page of payments with their refunds, newest first, continuing after the place
-- (after_xid, after_id) of a payment (payment_list_cursor; NULL for the first page);
-- each filter applies when given (metadata: every key given with its value, exactly;
-- index payments_metadata, migrations/0022). Only payments of transactions older than every
-- transaction still running are listed, in (created_xid, id) order, newest first
-- (migrations/0017): the id order, but for payments created at the same moment by
-- concurrent transactions. A payment that commits late therefore sorts before every
-- payment a client has paged through, as do payments created while it pages: a page
-- never repeats or skips one. The place is capped at that horizon (a payment not listed
-- yet continues from there). Keyset paging, no OFFSET: a page costs the same however
-- deep (indexes payments_listing and payments_status_listing, migrations/0018).
WITH page AS (
    SELECT p.id, p.created_xid
      FROM payments AS p
     WHERE (p.created_xid, p.id) < (
               LEAST(CAST(:after_xid AS xid8), pg_snapshot_xmin(pg_current_snapshot())),
               CASE WHEN CAST(:after_xid AS xid8) < pg_snapshot_xmin(pg_current_snapshot())
                    THEN CAST(:after_id AS bigint) ELSE 0 END)
       AND (CAST(:status AS text) IS NULL OR p.status = CAST(:status AS text))
       AND (CAST(:created_gte AS timestamptz) IS NULL
            OR p.created_at >= CAST(:created_gte AS timestamptz))
       AND (CAST(:created_lt AS timestamptz) IS NULL
            OR p.created_at < CAST(:created_lt AS timestamptz))
       AND (CAST(:metadata AS jsonb) IS NULL OR p.metadata @> CAST(:metadata AS jsonb))
     ORDER BY p.created_xid DESC, p.id DESC
     LIMIT :max_rows
)
SELECT r.*
  FROM page
  JOIN payment_resource AS r ON r.id = page.id
 ORDER BY page.created_xid DESC, page.id DESC;
