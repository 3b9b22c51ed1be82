-- Payments the gateway keeps reporting pending: the reconciler flags one for an operator
-- once it has been PROCESSING for [gateway] manual_review_after_seconds, and never fails
-- it without the gateway's word. The flag stays as history once the payment is settled.
ALTER TABLE payments ADD COLUMN manual_review_since timestamptz;

-- What "flagged for manual review" means, once: the operators' view, `payments ops`
-- and the service's gauge (payments_manual_review) all read this view.
CREATE VIEW ops.payments_for_manual_review AS
SELECT id AS payment_id, order_id, amount AS amount_jpy, transaction_id, created_at,
       updated_at AS processing_since, manual_review_since AS flagged_at,
       reconcile_checked_at AS last_asked_at, now() - updated_at AS age
  FROM payments
 WHERE status = 'PROCESSING' AND manual_review_since IS NOT NULL
 ORDER BY updated_at;
COMMENT ON VIEW ops.payments_for_manual_review IS
    'Which payments has the gateway left pending for so long that someone must look '
    '(check with the gateway, which then settles them by callback)?';
