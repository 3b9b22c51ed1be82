-- Payments and refunds, as in the design's ER diagram.
-- The database enforces every rule it can, so psql users and future code paths
-- cannot store what the API would refuse.

CREATE TABLE payments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id        bigint      NOT NULL CONSTRAINT payments_order_id_key UNIQUE
                                CONSTRAINT payments_order_id_positive CHECK (order_id >= 1),
    -- Unconstrained numeric keeps exactly what was written (never float), so the
    -- whole-yen check below really checks it instead of rounding silently.
    amount          numeric     NOT NULL
                                CONSTRAINT payments_amount_range CHECK (amount BETWEEN 100 AND 1000000)
                                CONSTRAINT payments_amount_whole_yen CHECK (amount = trunc(amount)),
    currency        text        NOT NULL DEFAULT 'JPY'
                                CONSTRAINT payments_currency_jpy CHECK (currency = 'JPY'),
    status          text        NOT NULL
                                CONSTRAINT payments_status_known CHECK (
                                    status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'REFUNDED')),
    payment_method  text        NOT NULL DEFAULT 'credit_card',
    transaction_id  uuid        NOT NULL DEFAULT gen_random_uuid()
                                CONSTRAINT payments_transaction_id_key UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The reconciler looks for payments left PROCESSING (a crash between the two steps).
CREATE INDEX payments_processing_since ON payments (updated_at) WHERE status = 'PROCESSING';

CREATE TABLE refunds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Full refunds only: one refund per payment, enforced here as well as in the handler.
    payment_id  bigint      NOT NULL REFERENCES payments (id)
                            CONSTRAINT refunds_one_per_payment UNIQUE,
    amount      numeric     NOT NULL
                            CONSTRAINT refunds_amount_range CHECK (amount BETWEEN 100 AND 1000000)
                            CONSTRAINT refunds_amount_whole_yen CHECK (amount = trunc(amount)),
    reason      text        NOT NULL CONSTRAINT refunds_reason_length CHECK (length(reason) <= 500),
    status      text        NOT NULL DEFAULT 'COMPLETED'
                            CONSTRAINT refunds_status_known CHECK (status IN ('COMPLETED')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
