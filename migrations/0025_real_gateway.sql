-- A real payment gateway (CONTRACT.md, "A real payment gateway: Stripe", "Refunds go through
-- the gateway"): a payment waiting for its buyer to authenticate (PENDING), the gateway's
-- references, and refunds that go through the gateway and may wait (PENDING) or fail.
-- Every column is added without a rewrite of its table; the checks that change are added
-- NOT VALID (enforced for every row written from now on; the rows before all hold) and
-- validated, with the indexes, by migrations/0026 without blocking writes.

ALTER TABLE payments
    -- The gateway's reference of the latest charge attempt (Stripe's pi_…, the simulator's
    -- own); NULL until the gateway answered.
    ADD COLUMN gateway_reference text,
    -- While PENDING: what the buyer's page does next, {"type": "authenticate",
    -- "client_secret": …}; NULL otherwise.
    ADD COLUMN next_action jsonb,
    -- The buyer's payment method the latest charge attempt was made with (Stripe's pm_…):
    -- the same request is what the reconciler sends again under the attempt's key.
    ADD COLUMN payment_method_token text;

ALTER TABLE payment_attempts
    ADD COLUMN gateway_reference text,
    ADD COLUMN payment_method_token text,
    -- An attempt waiting for its buyer is PENDING, as its payment is.
    DROP CONSTRAINT payment_attempts_status_known,
    ADD CONSTRAINT payment_attempts_status_known CHECK (
        status IN ('PROCESSING', 'PENDING', 'COMPLETED', 'FAILED')) NOT VALID;

-- The moves in and out of PENDING (service/domain/rules.py TRANSITIONS): a charge the
-- gateway holds for the buyer's authentication, then its outcome.
INSERT INTO payment_transitions (from_status, to_status)
VALUES ('PROCESSING', 'PENDING'),
       ('PENDING', 'COMPLETED'),
       ('PENDING', 'FAILED');

-- A refund is committed PENDING before the gateway is asked, then settled COMPLETED
-- (with its payment's move to REFUNDED and the `refunded` webhook) or FAILED (the payment
-- stays COMPLETED and may be refunded again). One refund per payment at a time, and one
-- that completed, stays unique: migrations/0026's partial index takes over from the
-- constraint of migrations/0001.
ALTER TABLE refunds
    DROP CONSTRAINT refunds_status_known,
    ADD CONSTRAINT refunds_status_known CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED'))
        NOT VALID,
    -- The gateway's reference of the refund (Stripe's re_…), once it answered.
    ADD COLUMN gateway_reference text,
    ADD COLUMN failure_code text,
    ADD COLUMN failure_message text,
    -- When it became COMPLETED or FAILED (refunds made before this migration: NULL, they
    -- completed as they were created).
    ADD COLUMN settled_at timestamptz,
    -- The API call that asked for it: the `refunded` webhook carries it, settled later too.
    ADD COLUMN request_id text,
    -- The reconciler's lease on a refund left PENDING, as on a payment (migrations/0006).
    ADD COLUMN reconcile_checked_at timestamptz;

-- A refund and its payment's move to REFUNDED come together: a COMPLETED refund needs
-- its payment REFUNDED, a REFUNDED payment a COMPLETED refund. A PENDING or FAILED refund
-- leaves its payment as it is.
CREATE OR REPLACE FUNCTION refuse_refund_without_refunded_payment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payment_status text := (SELECT status FROM payments WHERE id = NEW.payment_id);
BEGIN
    IF NEW.status = 'COMPLETED' AND payment_status IS DISTINCT FROM 'REFUNDED' THEN
        RAISE EXCEPTION 'refund % of payment % completed without its move to REFUNDED '
                        '(the payment is %)', NEW.id, NEW.payment_id, payment_status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'refunds_payment_refunded',
                  HINT = 'Complete a refund by moving its COMPLETED payment to REFUNDED in the '
                         'same transaction (or through the API).';
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER refunds_payment_refunded ON refunds;
CREATE CONSTRAINT TRIGGER refunds_payment_refunded
    AFTER INSERT OR UPDATE OF payment_id, status ON refunds
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION refuse_refund_without_refunded_payment();

CREATE OR REPLACE FUNCTION refuse_refunded_payment_without_refund() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM refunds WHERE payment_id = NEW.id AND status = 'COMPLETED') THEN
        RAISE EXCEPTION 'payment % moved from % to REFUNDED without a completed refund',
                        NEW.id, OLD.status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'payments_refunded_with_refund',
                  HINT = 'Complete its refund in the same transaction (or refund through the '
                         'API).';
    END IF;
    RETURN NULL;
END
$$;

-- Refunds completed: what ops.refunds_by_day has always counted.
CREATE OR REPLACE VIEW ops.refunds_by_day AS
SELECT CAST(created_at AS date) AS day, count(*) AS count, sum(amount) AS total_jpy
  FROM refunds
 WHERE status = 'COMPLETED'
 GROUP BY 1
 ORDER BY day DESC;

-- Payments waiting for their buyers: the operators' view, `payments ops` and the gauge
-- payments_waiting_for_buyer read it.
CREATE VIEW ops.payments_waiting_for_buyer AS
SELECT id AS payment_id, order_id, amount AS amount_jpy, gateway_reference,
       updated_at AS waiting_since, now() - updated_at AS waiting
  FROM payments
 WHERE status = 'PENDING'
 ORDER BY updated_at;
COMMENT ON VIEW ops.payments_waiting_for_buyer IS
    'Which payments wait for their buyer to authenticate (3-D Secure), and since when? The '
    'reconciler cancels one after [gateway] authentication_timeout_seconds.';

-- The read side's resource: every column of the payment (migrations/0020), with every
-- column of each refund and of each charge attempt, oldest first. No column is named, so
-- the resource's shape is the tables' and the Structs' (service/domain/model.py).
DROP VIEW payment_resource;
CREATE VIEW payment_resource AS
SELECT p.*,
       COALESCE((SELECT json_agg(r ORDER BY r.id) FROM refunds r WHERE r.payment_id = p.id),
                '[]') AS refunds,
       COALESCE((SELECT json_agg(a ORDER BY a.id) FROM payment_attempts a
                  WHERE a.payment_id = p.id), '[]') AS attempts
  FROM payments p;
COMMENT ON VIEW payment_resource IS
    'The payment resource of the API''s read side: every column of the payment, its refunds '
    'and its charge attempts (JSON arrays, oldest first).';
