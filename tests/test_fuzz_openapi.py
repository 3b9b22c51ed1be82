"""Schemathesis against the running service's own OpenAPI document (/schema/openapi.json).

Every operation is fuzzed with valid (positive) and invalid (negative) requests; each answer
must not be a 5xx and must conform to the response schema the document declares for it.
The gateway callback is fuzzed twice: unsigned (the signature check answers) and with a valid
Standard Webhooks signature on each generated body, so the body parser is reached too.
Bearer authentication is off (the service's default), so the payments endpoints are reached.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.support.callbacks import signed_headers
from tests.support.service import RunningService

EXAMPLES_PER_OPERATION_AND_MODE = 50
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]
EXPECTED_OPERATIONS = {
    "createPayment",
    "createPayments",
    "listPayments",
    "getPayment",
    "getPaymentByOrder",
    "refundPayment",
    "applyGatewayCallback",
    "live",
    "ready",
    "MetricsGet",
}
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


@dataclass
class FuzzRun:
    requests_sent: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    by_operation_status: dict[str, dict[int, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    transaction_ids: list[str] = field(default_factory=list)  # of payments the run made
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, operation: str, status: int) -> None:
        with self.lock:
            self.requests_sent += 1
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            seen = self.by_operation_status.setdefault(operation, {})
            seen[status] = seen.get(status, 0) + 1


def _has_inputs(operation: Any) -> bool:
    return bool(
        operation.definition.raw.get("parameters") or operation.definition.raw.get("requestBody")
    )


def _fuzz_operation(
    operation: Any, mode: GenerationMode, base_url: str, session: requests.Session, run: FuzzRun
) -> None:
    label = f"{operation.label} [{mode.value}]"
    if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
        return  # nothing to make invalid: no parameter and no body

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        run.count(operation.definition.raw["operationId"], response.status_code)
        case.validate_response(response, checks=CHECKS)

    try:
        fuzz()
    except (Exception, BaseExceptionGroup) as exc:  # a failure: keep it, go on with the others
        run.failures.append(f"{label}:\n{exc}")


def _fuzz_signed_callback(
    operation: Any, mode: GenerationMode, base_url: str, session: requests.Session, run: FuzzRun
) -> None:
    """Generated callback bodies, each signed correctly, so they reach the parser; some name
    payments that exist (COMPLETED or REFUNDED), so the state machine answers too."""
    label = f"{operation.label} [{mode.value}, signed]"
    raw_bodies = st.binary(max_size=64) | st.just(b"")
    known = st.sampled_from(run.transaction_ids) if run.transaction_ids else st.none()

    @FUZZ_SETTINGS
    @given(
        case=operation.as_strategy(generation_mode=mode),
        raw=raw_bodies,
        shape=st.sampled_from(["generated", "raw", "known payment"]),
        transaction_id=known,
    )
    def fuzz(case: Any, raw: bytes, shape: str, transaction_id: str | None) -> None:
        generated = case.body
        if shape == "known payment" and isinstance(generated, dict) and transaction_id:
            generated = {**generated, "transaction_id": transaction_id}
        if shape == "raw" or not isinstance(generated, dict | list | str | int | float | bool):
            body = raw
        else:
            body = json.dumps(generated).encode()
        response = session.post(
            base_url + "/api/v1/payments/webhook",
            data=body,
            headers=signed_headers(body),
            timeout=30,
        )
        run.count("applyGatewayCallback (signed)", response.status_code)
        assert response.status_code != 401, f"a correctly signed callback was refused: {body!r}"
        case.validate_response(response, checks=CHECKS)

    try:
        fuzz()
    except (Exception, BaseExceptionGroup) as exc:
        run.failures.append(f"{label}:\n{exc}")


WHOLE_YEN = st.integers(100, 1_000_000)
VALID_CREATE_BODIES = st.fixed_dictionaries(
    {"order_id": st.integers(1, 2**63 - 1), "amount": WHOLE_YEN | WHOLE_YEN.map(float)},
    optional={"currency": st.just("JPY")},
)
REASONS = st.text(min_size=1, max_size=500)
DUPLICATE_ORDER = "https://payments.example/problems/duplicate-order"


def _fuzz_valid_flows(
    operations: dict[str, Any], base_url: str, session: requests.Session, run: FuzzRun
) -> None:
    """Contract-valid requests (the document's own request schemas are looser than the
    contract, so generated "positive" bodies are nearly all refused): create, read back by id
    and by order, refund, read again. Success responses get their schemas checked too."""

    def send(name: str, case: Any) -> Any:
        response = case.call(base_url=base_url, session=session, timeout=30)
        run.count(f"{name} (valid)", response.status_code)
        case.validate_response(response, checks=CHECKS)
        return response

    @FUZZ_SETTINGS
    @given(body=VALID_CREATE_BODIES, reason=REASONS, with_amount=st.booleans())
    def flow(body: dict[str, Any], reason: str, with_amount: bool) -> None:
        create = operations["createPayment"]
        created = send("createPayment", create.Case(body=body, media_type="application/json"))
        if created.status_code == 400:
            assert created.json()["type"] == DUPLICATE_ORDER, created.text
            return
        assert created.status_code == 201, created.text
        payment = created.json()
        run.transaction_ids.append(payment["transaction_id"])
        by_id = {"payment_id": str(payment["id"])}
        send("getPayment", operations["getPayment"].Case(path_parameters=by_id))
        by_order = {"order_id": body["order_id"]}
        send("getPaymentByOrder", operations["getPaymentByOrder"].Case(path_parameters=by_order))
        refund_body: dict[str, Any] = {"payment_id": payment["id"], "reason": reason}
        if with_amount:
            refund_body["amount"] = body["amount"]
        refund = operations["refundPayment"].Case(body=refund_body, media_type="application/json")
        refunded = send("refundPayment", refund)
        # A reason of blanks only, or with a NUL (PostgreSQL text cannot hold one), is refused.
        storable = bool(reason.strip()) and "\x00" not in reason
        assert refunded.status_code == (201 if storable else 400), (reason, refunded.text)
        send("getPayment", operations["getPayment"].Case(path_parameters=by_id))

    try:
        flow()
    except (Exception, BaseExceptionGroup) as exc:
        run.failures.append(f"valid flows:\n{exc}")


def fuzz_service(base_url: str) -> FuzzRun:
    schema = schemathesis.openapi.from_url(base_url + "/schema/openapi.json")
    run = FuzzRun()
    operations = {
        operation.definition.raw["operationId"]: operation
        for operation in (result.ok() for result in schema.get_all_operations())
    }
    with requests.Session() as session:
        _fuzz_valid_flows(operations, base_url, session, run)  # first: it makes payments
        for name, operation in operations.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(operation, mode, base_url, session, run)
                if name == "applyGatewayCallback":
                    _fuzz_signed_callback(operation, mode, base_url, session, run)
    return run


@pytest.mark.slow
async def test_schemathesis_finds_no_5xx_and_no_schema_violation_in_any_operation(
    service: RunningService,
) -> None:
    # Schemathesis is synchronous; the service keeps serving in this loop meanwhile.
    run = await asyncio.to_thread(fuzz_service, service.url)

    print(
        f"\nschemathesis {schemathesis.SCHEMATHESIS_VERSION}: {run.requests_sent} requests fuzzed; "
        f"by operation and status {run.by_operation_status}"
    )
    assert not run.failures, "\n\n".join(run.failures)
    fuzzed = {name for name in run.by_operation if not name.endswith(")")}
    assert fuzzed == EXPECTED_OPERATIONS, fuzzed
    assert not any(status >= 500 for status in run.statuses)
    # Valid requests succeeded (their success bodies were checked), invalid ones were refused.
    for name, status in [("createPayment (valid)", 201), ("refundPayment (valid)", 201)]:
        assert run.by_operation_status.get(name, {}).get(status), (name, run.by_operation_status)
    assert any(400 <= status < 500 for status in run.statuses), run.statuses
    assert (await service.client.get("/health/ready")).status_code == 200


# --- the document's request schemas say what the contract says -------------------------------


def _request_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = ref["$ref"].rsplit("/", 1)[-1]
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


CONTRACT_BODIES: list[tuple[str, dict[str, Any], bool]] = [
    # (path, body, valid per CONTRACT.md)
    ("/api/v1/payments", {"order_id": 1, "amount": 89800}, True),
    ("/api/v1/payments", {"order_id": 1, "amount": 89800.0, "currency": "JPY"}, True),
    ("/api/v1/payments", {"order_id": 1, "amount": 100}, True),
    ("/api/v1/payments", {"order_id": 1, "amount": 1_000_000}, True),
    ("/api/v1/payments", {"order_id": 2**63 - 1, "amount": 1000}, True),
    ("/api/v1/payments", {"order_id": 1, "amount": 1000, "note": "x"}, False),
    ("/api/v1/payments", {"order_id": 1, "amount": "1000"}, False),
    ("/api/v1/payments", {"order_id": 2**63, "amount": 1000}, False),
    ("/api/v1/payments/refund", {"payment_id": 1, "reason": "r"}, True),
    ("/api/v1/payments/refund", {"payment_id": 1, "reason": "r", "amount": 89800}, True),
    ("/api/v1/payments/refund", {"payment_id": 1, "reason": "r", "amount": 89800.0}, True),
    ("/api/v1/payments/refund", {"payment_id": 1, "reason": "r", "extra": 1}, False),
]


async def test_the_documented_request_schemas_accept_what_the_contract_accepts(
    service: RunningService,
) -> None:
    import jsonschema_rs  # installed with schemathesis

    document = (await service.client.get("/schema/openapi.json")).json()
    wrong = [
        f"{path}: unknown fields are refused (400), so additionalProperties must be false"
        for path in ("/api/v1/payments", "/api/v1/payments/refund")
        if _request_schema(document, path).get("additionalProperties") is not False
    ]
    for path, body, valid in CONTRACT_BODIES:
        validator = jsonschema_rs.validator_for(_request_schema(document, path))
        if validator.is_valid(body) != valid:
            wrong.append(f"{path} {body}: contract says {'valid' if valid else 'invalid'}")
    assert not wrong, "\n".join(wrong)
