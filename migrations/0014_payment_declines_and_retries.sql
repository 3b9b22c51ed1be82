-- Why a payment failed, and paying a declined order after all: a FAILED payment keeps
-- its failure code and message, a retry takes it back to PROCESSING under a new
-- transaction_id, and every attempt (the create, then each retry) stays visible.

-- The latest attempt's failure, set when it ends FAILED and cleared when a retry
-- starts. The codes and their messages are service/domain/failures.py's.
ALTER TABLE payments
    ADD COLUMN failure_code text,
    ADD COLUMN failure_message text
        CONSTRAINT payments_failure_message_with_code
        CHECK (failure_message IS NULL OR failure_code IS NOT NULL);
-- Payments that failed before this migration were all declined without a reason: they
-- get the generic decline. The sentence is copied from service/domain/failures.py once,
-- here, as it read when this migration was written.
UPDATE payments
   SET failure_code = 'card_declined',
       failure_message = 'The card was declined by its issuer.'
 WHERE status = 'FAILED';

-- A retry: FAILED goes back to PROCESSING (service/domain/rules.py TRANSITIONS).
INSERT INTO payment_transitions (from_status, to_status) VALUES ('FAILED', 'PROCESSING');

-- One row per try at charging a payment, oldest first: the create, then each retry.
-- Written by the statements that change the payment, in the same statement: the
-- insert of a PROCESSING payment or a retry adds one, a settlement ends the one whose
-- transaction_id it names. payments.transaction_id is always its latest attempt's.
CREATE TABLE payment_attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id      bigint      NOT NULL REFERENCES payments (id),
    transaction_id  uuid        NOT NULL CONSTRAINT payment_attempts_transaction_id_key UNIQUE,
    -- How the attempt ended (a refund changes the payment, not the charge: COMPLETED stays).
    status          text        NOT NULL DEFAULT 'PROCESSING'
                                CONSTRAINT payment_attempts_status_known CHECK (
                                    status IN ('PROCESSING', 'COMPLETED', 'FAILED')),
    failure_code    text        CONSTRAINT payment_attempts_failure_only_when_failed CHECK (
                                    failure_code IS NULL OR status = 'FAILED'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz
);
CREATE INDEX payment_attempts_payment ON payment_attempts (payment_id, id);
COMMENT ON TABLE payment_attempts IS
    'Each try at charging a payment (the create, then each retry of a FAILED one), with '
    'its own transaction_id; payments.transaction_id is the latest one''s.';

-- Every payment made so far had exactly one attempt, its create. Settled at its
-- settlement's webhook, else when last updated (unless a refund moved it since), else
-- at its refund (it came before), as ops.order_timeline dated settlements until now.
INSERT INTO payment_attempts (payment_id, transaction_id, status, failure_code, created_at,
                              settled_at)
SELECT p.id, p.transaction_id,
       CASE p.status WHEN 'REFUNDED' THEN 'COMPLETED' ELSE p.status END,
       p.failure_code, p.created_at,
       CASE WHEN p.status <> 'PROCESSING' THEN
           COALESCE((SELECT min(o.created_at) FROM outbox o
                      WHERE o.payment_id = p.id
                        AND o.body->>'payment_status' IN ('completed', 'failed')),
                    CASE WHEN p.status <> 'REFUNDED' THEN p.updated_at END,
                    (SELECT min(r.created_at) FROM refunds r WHERE r.payment_id = p.id))
       END
  FROM payments p
 WHERE p.status <> 'PENDING'
 ORDER BY p.id;

-- The read side's resource: the failure (of a FAILED payment only) and the attempts.
CREATE OR REPLACE VIEW payment_resource AS
SELECT p.id, p.order_id, p.amount, p.currency, p.status, p.payment_method,
       p.transaction_id, p.created_at, p.updated_at,
       COALESCE((SELECT json_agg(json_build_object(
                            'id', r.id, 'payment_id', r.payment_id, 'amount', r.amount,
                            'reason', r.reason, 'status', r.status, 'created_at', r.created_at)
                        ORDER BY r.id)
                   FROM refunds r
                  WHERE r.payment_id = p.id), '[]') AS refunds,
       CASE WHEN p.status = 'FAILED' THEN p.failure_code END AS failure_code,
       CASE WHEN p.status = 'FAILED' THEN p.failure_message END AS failure_message,
       COALESCE((SELECT json_agg(json_build_object(
                            'transaction_id', a.transaction_id, 'status', a.status,
                            'failure_code', a.failure_code, 'created_at', a.created_at)
                        ORDER BY a.id)
                   FROM payment_attempts a
                  WHERE a.payment_id = p.id), '[]') AS attempts
  FROM payments p;

-- The operators' timeline, by attempt: the create and each retry ('payment retried'),
-- each settlement with its failure code in `detail`, and gateway callbacks joined to
-- the attempt they name (an earlier attempt's transaction id too).
CREATE OR REPLACE VIEW ops.order_timeline AS
SELECT * FROM (
    SELECT p.order_id, a.created_at AS at, 1 AS step,
           CASE WHEN a.id = first.id THEN 'payment created' ELSE 'payment retried' END AS what,
           p.id AS payment_id, p.amount AS amount_jpy,
           CASE WHEN a.id = first.id THEN 'now ' || p.status ELSE 'PROCESSING' END AS state,
           NULL::integer AS attempts, NULL::timestamptz AS finished_at,
           NULL::text AS detail, a.transaction_id::text AS ref
      FROM payment_attempts a
      JOIN payments p ON p.id = a.payment_id
      JOIN LATERAL (SELECT min(f.id) AS id FROM payment_attempts f
                     WHERE f.payment_id = p.id) first ON true
    UNION ALL
    -- A PENDING payment (typed in by hand) has no attempt yet.
    SELECT p.order_id, p.created_at, 1, 'payment created', p.id, p.amount,
           'now ' || p.status, NULL, NULL, NULL, p.transaction_id::text
      FROM payments p
     WHERE NOT EXISTS (SELECT FROM payment_attempts a WHERE a.payment_id = p.id)
    UNION ALL
    SELECT p.order_id, g.received_at, 2, 'gateway callback ' || g.status,
           p.id, NULL, NULL, NULL, NULL, NULL, g.webhook_id
      FROM gateway_events g
      JOIN payment_attempts a ON a.transaction_id = g.transaction_id
      JOIN payments p ON p.id = a.payment_id
    UNION ALL
    SELECT p.order_id, a.settled_at, 3, 'payment ' || lower(a.status),
           p.id, p.amount, a.status, NULL, NULL, a.failure_code, a.transaction_id::text
      FROM payment_attempts a JOIN payments p ON p.id = a.payment_id
     WHERE a.status IN ('COMPLETED', 'FAILED')
    UNION ALL
    SELECT p.order_id, r.created_at, 4, 'refund',
           p.id, r.amount, r.status, NULL, NULL, 'reason: ' || r.reason, r.id::text
      FROM refunds r JOIN payments p ON p.id = r.payment_id
    UNION ALL
    SELECT o.order_id, o.created_at, 5, 'webhook ' || (o.body->>'payment_status'),
           o.payment_id, NULL,
           CASE WHEN o.delivered_at IS NOT NULL THEN 'delivered'
                WHEN o.dead_at IS NOT NULL THEN 'dead'
                WHEN o.claimed_until > now() THEN 'in flight'
                WHEN b.id IS NOT NULL THEN 'blocked'
                WHEN o.attempts > 0 THEN 'retrying'
                ELSE 'pending' END,
           o.attempts, COALESCE(o.delivered_at, o.dead_at), o.last_error, o.id::text
      FROM outbox o LEFT JOIN outbox_blocked b ON b.id = o.id
) AS timeline
ORDER BY order_id, at, step;
COMMENT ON VIEW ops.order_timeline IS
    'What happened to an order, in order: payment created, each retry, gateway callbacks, '
    'each attempt settled (a failure with its code), refund, and each webhook with its '
    'delivery state? (WHERE order_id = N)';

-- Declines by reason: what operators (and the people who talk to customers) ask first.
CREATE VIEW ops.declines_by_code_day AS
SELECT CAST(a.settled_at AS date) AS day, a.failure_code, count(*) AS attempts,
       count(DISTINCT a.payment_id) AS payments,
       count(*) FILTER (WHERE p.status = 'FAILED' AND p.transaction_id = a.transaction_id)
           AS still_failed
  FROM payment_attempts a JOIN payments p ON p.id = a.payment_id
 WHERE a.status = 'FAILED'
 GROUP BY 1, 2
 ORDER BY day DESC, attempts DESC, failure_code;
COMMENT ON VIEW ops.declines_by_code_day IS
    'How many charge attempts were declined each day, for which reason, and how many of '
    'those payments are still FAILED (not retried to success)?';
