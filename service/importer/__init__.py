"""`payments import FILE`: pay many orders from a file, each order its own payment.

By default rows go to the batch endpoint (POST /api/v1/payments/batch, design 5.1 and
DD-PAY-LIM-001) in batches of --batch-size, a few calls in flight; `--one-by-one`
makes one POST /api/v1/payments/ call per row instead. Either way rows are checked
locally with the domain rules, every call carries an Idempotency-Key derived from its
rows (a rerun replays instead of paying twice), network errors, 5xx and 409 are
retried, and every row ends in the CSV report.

Modules: formats (CSV / JSON lines records), rows (validation, duplicates),
client (one row's HTTP calls and retries), batches (a batch call, reported per row),
runner (concurrency, stopping), progress, report (CSV report, summary), cli (the
click command).
"""

from service.importer.cli import import_command

__all__ = ["import_command"]
