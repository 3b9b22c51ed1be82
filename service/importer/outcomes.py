"""How each row of an import ended."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    PAID = "paid"  # paid by this run
    ALREADY_PAID = "already_paid"  # the order had a COMPLETED payment before this run
    PROCESSING = "processing"  # the order has a payment the gateway has not decided yet
    REFUNDED = "refunded"  # the order's payment was refunded: paying it again needs a new order
    DECLINED = "declined"  # the gateway declined (the payment is stored FAILED)
    INVALID = "invalid"  # breaks a rule locally: never sent
    DUPLICATE_IN_FILE = "duplicate_in_file"  # an earlier row of the file has the same order
    REJECTED = "rejected"  # a final 4xx answer
    FAILED = "failed"  # retries exhausted (network errors, 5xx), or interrupted in flight
    NOT_SENT = "not_sent"  # the run stopped (Ctrl-C) before sending it


SUCCESSES = frozenset({Outcome.PAID, Outcome.ALREADY_PAID})


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    payment_id: int | None = None
    payment_status: str = ""
    http_status: int | None = None
    problem_type: str = ""
    detail: str = ""
    sends: int = 0  # HTTP sends of the create call (0: not sent)
