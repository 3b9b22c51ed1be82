"""`payments import FILE`: pay many orders from a file, one API call per order.

The service has no batch endpoint (design 5.1, DD-PAY-LIM-001..004), so a bulk
import is N individual, idempotent calls: rows are checked locally with the
domain rules, sent with bounded concurrency and a per-row Idempotency-Key,
retried on network errors and 5xx, and every row ends in a CSV report.

Modules: formats (CSV / JSON lines records), rows (validation, duplicates),
client (one row's HTTP calls and retries), runner (concurrency, stopping),
progress, report (CSV report, summary), cli (the click command).
"""

from service.importer.cli import import_command

__all__ = ["import_command"]
