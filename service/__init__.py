"""Payment Service: single-order payments, CQRS on raw SQL, outbox-fed order webhooks."""
