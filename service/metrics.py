"""Prometheus metrics of the service's own (HTTP metrics come from Litestar's plugin).

Per process: with several workers, scrape each, or run one worker per container.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PAYMENTS = Counter(
    "payments_created_total",
    "Payments by result: completed, failed (declined), processing (async gateway)",
    ["result"],
)
PAYMENTS_RECONCILED = Counter(
    "payments_reconciled_total", "Payments settled by the reconciler", ["result"]
)
MANUAL_REVIEW = Gauge(
    "payments_manual_review",
    "PROCESSING payments the gateway has left undecided past manual_review_after_seconds",
)
WAITING_FOR_BUYER = Gauge(
    "payments_waiting_for_buyer",
    "PENDING payments: waiting for their buyer to authenticate (3-D Secure)",
)
REFUNDS = Counter("payments_refunds_total", "Refunds completed")
GATEWAY_CALLBACKS = Counter(
    "payments_gateway_callbacks_total", "Gateway callbacks by outcome", ["outcome"]
)
WEBHOOK_ATTEMPTS = Counter(
    "payments_webhook_attempts_total",
    "Order webhook sends by outcome: delivered, retry (a failed delivery attempt, will "
    "retry), dead (the last delivery attempt failed), outage (failed while the Order "
    "Service was down: no delivery attempt counted against the event)",
    ["outcome"],
)
OUTBOX_PENDING = Gauge("payments_outbox_pending", "Undelivered, live outbox events")
OUTBOX_OLDEST_AGE = Gauge(
    "payments_outbox_oldest_age_seconds", "Age of the oldest undelivered live event (relay lag)"
)
OUTBOX_DEAD = Gauge("payments_outbox_dead", "Dead outbox events awaiting replay")
OUTBOX_BLOCKED = Gauge(
    "payments_outbox_blocked",
    "Undelivered live events waiting behind an earlier undelivered event of their order",
)
READS = Counter(
    "payments_reads_total",
    "Read-side queries (by id, by order, lists) by the source that answered: replica, primary",
    ["source"],
)
REPLICA_FALLBACKS = Counter(
    "payments_replica_fallbacks_total",
    "Reads the replica could not answer, asked of the primary: not-there-yet (missing or "
    "unsettled on the replica), failed (the round trip failed)",
    ["reason"],
)
REPLICA_LAG = Gauge(
    "payments_replica_lag_seconds",
    "How long ago the read replica was last known to have replayed all of the primary's WAL",
)
