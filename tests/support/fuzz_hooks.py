"""Schemathesis hooks of the suite's fuzz run (tests/test_fuzz_openapi.py, SCHEMATHESIS_HOOKS).

Every check runs, and every failure counts but one kind: positive_data_acceptance (ST202)
meeting a refusal that depends on what earlier requests did, which no schema can say. A
schema-valid create for an order already paid is the design's 400 `duplicate-order`; a
refund of a payment not COMPLETED (or already refunded) its 400 `not-refundable`; a refund
whose amount is not the payment's its 400 `refund-amount-mismatch` (full refunds only); a
retry of a payment not FAILED its 400 `not-retryable`; and an Idempotency-Key this run
already sent to the endpoint with another body its 422 `idempotency-key-reused`. Nothing
else is set aside: any other status or problem type stays a failure.

One more, a rule of the service that JSON Schema cannot state: an id written as a whole
float (`"order_id": 11.0`) is refused with 400, on purpose (tests/test_hostile_input.py),
while JSON Schema 2020-12 counts 11.0 as an integer and schemathesis sends such spellings
for integer fields. Set aside only when the refused body holds such an id and the problem
says exactly that.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

PROBLEMS = "https://payments.example/problems/"
BUSINESS_RULE_REFUSALS = {
    PROBLEMS + "duplicate-order",
    PROBLEMS + "not-refundable",
    PROBLEMS + "refund-amount-mismatch",
    PROBLEMS + "not-retryable",
}
KEY_REUSED = PROBLEMS + "idempotency-key-reused"
INVALID_REQUEST = PROBLEMS + "invalid-request"
IDS = ("order_id", "payment_id")

# (method, path, Idempotency-Key) -> digests of the bodies this run sent with it: the
# service keys idempotency by endpoint and key, and compares the raw body's SHA-256.
_bodies_by_key: dict[tuple[str, str, str], set[bytes]] = {}
_lock = threading.Lock()


def _key_and_digest(request: Any) -> tuple[tuple[str, str, str], bytes] | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    body = request.body or b""
    raw = body.encode() if isinstance(body, str) else body
    path = request.path_url.split("?", 1)[0].rstrip("/")
    return (request.method, path, key), hashlib.sha256(raw).digest()


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    sent = _key_and_digest(response.request)
    if sent is not None:
        with _lock:
            _bodies_by_key.setdefault(sent[0], set()).add(sent[1])


def _problem_type(response: Any) -> str | None:
    try:
        problem = json.loads(response.content)
    except ValueError:
        return None
    return problem.get("type") if isinstance(problem, dict) else None


def _key_sent_with_another_body(response: Any) -> bool:
    sent = _key_and_digest(response.request)
    if sent is None:
        return False
    with _lock:
        return bool(_bodies_by_key.get(sent[0], set()) - {sent[1]})


def _refused_a_whole_float_id(case: Any, response: Any) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    whole_float_ids = [
        name for name in IDS if isinstance(body.get(name), float) and body[name].is_integer()
    ]
    detail = json.loads(response.content).get("detail", "")
    refusals = {f"Expected `int`, got `decimal` - at `$.{name}`" for name in whole_float_ids}
    return detail in refusals


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """False (set aside) only for the refusals described above."""
    if not isinstance(failure, RejectedPositiveData):
        return True
    problem_type = _problem_type(response)
    if response.status_code == 400 and problem_type in BUSINESS_RULE_REFUSALS:
        return False
    if response.status_code == 400 and problem_type == INVALID_REQUEST:
        return not _refused_a_whole_float_id(case, response)
    if response.status_code == 422 and problem_type == KEY_REUSED:
        return not _key_sent_with_another_body(response)
    return True
