-- Read side: the payment resource as clients see it, refunds included
-- (view `payment_resource`, migrations/0003). Never used by the write side.

-- name: payment_by_id(payment_id)^
-- One payment with its refunds (a JSON array, oldest first).
SELECT * FROM payment_resource WHERE id = :payment_id;

-- name: payment_by_order(order_id)^
-- The payment of one order (1:1) with its refunds.
SELECT * FROM payment_resource WHERE order_id = :order_id;
