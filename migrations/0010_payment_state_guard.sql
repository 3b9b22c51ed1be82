-- The state machine, guarded by the database as well: operators work in psql, and a
-- hand-typed UPDATE must not move a payment where the service never would.

-- The legal moves, as rows: service/domain/rules.py TRANSITIONS is the source and
-- tests/test_state_guard.py fails when this table differs from it.
CREATE TABLE payment_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
COMMENT ON TABLE payment_transitions IS
    'The legal status changes of a payment (service/domain/rules.py TRANSITIONS); '
    'trigger payments_status_transition refuses every other.';
INSERT INTO payment_transitions (from_status, to_status)
VALUES ('PENDING', 'PROCESSING'),
       ('PROCESSING', 'COMPLETED'),
       ('PROCESSING', 'FAILED'),
       ('COMPLETED', 'REFUNDED');

CREATE FUNCTION refuse_illegal_payment_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    allowed text;
BEGIN
    IF NOT EXISTS (SELECT FROM payment_transitions
                    WHERE from_status = OLD.status AND to_status = NEW.status) THEN
        SELECT string_agg(to_status, ' or ' ORDER BY to_status) INTO allowed
          FROM payment_transitions WHERE from_status = OLD.status;
        RAISE EXCEPTION 'payment % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'payments_status_transition',
                  DETAIL = CASE WHEN allowed IS NULL
                                THEN format('%s is final: a payment never moves from it.',
                                            OLD.status)
                                ELSE format('From %s a payment may only move to %s.',
                                            OLD.status, allowed) END,
                  HINT = 'The legal moves are the rows of payment_transitions.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER payments_status_transition
    BEFORE UPDATE OF status ON payments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION refuse_illegal_payment_transition();

-- A refund and its payment's move to REFUNDED come together or not at all. Checked at
-- commit: the refund statement writes both in one data-modifying WITH, whose parts do
-- not see each other's rows, and psql users may write them in either order.
CREATE FUNCTION refuse_refund_without_refunded_payment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payment_status text := (SELECT status FROM payments WHERE id = NEW.payment_id);
BEGIN
    IF payment_status IS DISTINCT FROM 'REFUNDED' THEN
        RAISE EXCEPTION 'refund % of payment % without its move to REFUNDED (the payment is %)',
                        NEW.id, NEW.payment_id, payment_status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'refunds_payment_refunded',
                  HINT = 'Refund a COMPLETED payment by moving it to REFUNDED in the same '
                         'transaction as the refund row (or through the API).';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER refunds_payment_refunded
    AFTER INSERT OR UPDATE OF payment_id ON refunds
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION refuse_refund_without_refunded_payment();

CREATE FUNCTION refuse_refunded_payment_without_refund() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM refunds WHERE payment_id = NEW.id) THEN
        RAISE EXCEPTION 'payment % moved from % to REFUNDED without a refund row',
                        NEW.id, OLD.status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'payments_refunded_with_refund',
                  HINT = 'Insert its refund in the same transaction (or refund through the API).';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER payments_refunded_with_refund
    AFTER UPDATE OF status ON payments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.status = 'REFUNDED' AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION refuse_refunded_payment_without_refund();
