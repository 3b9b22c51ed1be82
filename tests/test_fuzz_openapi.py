"""Schemathesis against the running service's own OpenAPI document (/schema/openapi.json).

The whole run, as an outside user would start it: `schemathesis run` with every check and the
examples, coverage, fuzzing and stateful phases, once with authentication off (the default)
and once on with a token given. Failures are set aside only as tests/support/fuzz_hooks.py
declares (a schema-valid request meeting a business rule that depends on earlier requests).
Then, in process, what the document alone cannot reach: contract-valid flows (create, read,
refund) and gateway callbacks signed correctly, so that their bodies reach the parser.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.support.callbacks import signed_headers
from tests.support.order_stub import OrderServiceStub
from tests.support.paths import PROJECT_ROOT
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings

EXAMPLES_PER_OPERATION = 30
PHASES = "examples,coverage,fuzzing,stateful"
TOKEN = "fuzz-token-1"
# The signed callbacks send bodies of their own, not the case's: only the answer is checked.
CALLBACK_CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
]
EXPECTED_OPERATIONS = {
    "POST /api/v1/payments",
    "GET /api/v1/payments",
    "POST /api/v1/payments/batch",
    "GET /api/v1/payments/{payment_id}",
    "GET /api/v1/payments/order/{order_id}",
    "POST /api/v1/payments/refund",
    "POST /api/v1/payments/{payment_id}/retry",
    "POST /api/v1/payments/webhook",
    "GET /api/v1/events",
    "POST /api/v1/events/{event_id}/redeliver",
    "GET /health/live",
    "GET /health/ready",
    "GET /metrics",
}
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


async def run_schemathesis(base_url: str, report: Path, *headers: str) -> dict[str, Any]:
    """`schemathesis run` against `base_url`, every check, every phase; its JSON report.

    A process of its own, so that the service keeps serving in this event loop meanwhile.
    """
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", base_url + "/schema/openapi.json"),
        *("--checks", "all", "--phases", PHASES, "--workers", "1", "--no-color"),
        *("--max-examples", str(EXAMPLES_PER_OPERATION), "--generation-deterministic"),
        *("--report", "json", "--report-json-path", str(report)),
        *(argument for header in headers for argument in ("-H", header)),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.fuzz_hooks"}
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=report.parent,  # where schemathesis keeps its own files
        env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    try:
        # The process has ended: reading its small report cannot block the loop for long.
        result: dict[str, Any] = json.loads(report.read_bytes())  # noqa: ASYNC240
    except FileNotFoundError:
        raise AssertionError(output.decode(errors="replace")) from None
    result["output"] = output.decode(errors="replace")
    return result


@pytest.mark.slow
@pytest.mark.parametrize("auth", ["auth off", "auth on"])
async def test_schemathesis_runs_every_check_in_every_phase_without_a_failure(
    database_url: str, order_stub: OrderServiceStub, tmp_path: Path, auth: str
) -> None:
    tokens = (TOKEN,) if auth == "auth on" else ()
    settings = make_settings(database_url, order_stub.url, auth={"tokens": tokens})
    headers = [f"Authorization: Bearer {TOKEN}"] if tokens else []

    async with serve(settings) as service:
        run = await run_schemathesis(service.url, tmp_path / "report.json", *headers)
        ready = await service.client.get("/health/ready")
        document = (await service.client.get("/schema/openapi.json")).json()

    print(
        f"\nschemathesis {schemathesis.SCHEMATHESIS_VERSION}, {auth}: "
        f"{run['test_cases']['generated']} test cases, {run['filtered']} failures set aside "
        f"by tests/support/fuzz_hooks.py; phases {run['phases']}"
    )
    assert run["exit_code"] == 0 and not run["failures"] and not run["errors"], run["output"]
    # The operations tested are the document's, and the document's are these.
    served = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    assert served == EXPECTED_OPERATIONS
    assert run["operations"]["tested"] == len(EXPECTED_OPERATIONS), run["output"]
    assert all(phase["status"] == "success" for phase in run["phases"].values()), run["phases"]
    assert ready.status_code == 200, ready.text


@dataclass
class FuzzRun:
    requests_sent: int = 0
    by_operation_status: dict[str, dict[int, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    transaction_ids: list[str] = field(default_factory=list)  # of payments the run made
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, operation: str, status: int) -> None:
        with self.lock:
            self.requests_sent += 1
            seen = self.by_operation_status.setdefault(operation, {})
            seen[status] = seen.get(status, 0) + 1


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
        case.validate_response(response, checks=CALLBACK_CHECKS)

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
        case.validate_response(response)  # every check that applies to one answer
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


def fuzz_flows_and_signed_callbacks(base_url: str) -> FuzzRun:
    schema = schemathesis.openapi.from_url(base_url + "/schema/openapi.json")
    run = FuzzRun()
    operations = {
        operation.definition.raw["operationId"]: operation
        for operation in (result.ok() for result in schema.get_all_operations())
    }
    with requests.Session() as session:
        _fuzz_valid_flows(operations, base_url, session, run)  # first: it makes payments
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            callback = operations["applyGatewayCallback"]
            _fuzz_signed_callback(callback, mode, base_url, session, run)
    return run


@pytest.mark.slow
async def test_valid_flows_and_signed_callbacks_meet_their_documented_answers(
    service: RunningService,
) -> None:
    # Schemathesis is synchronous; the service keeps serving in this loop meanwhile.
    run = await asyncio.to_thread(fuzz_flows_and_signed_callbacks, service.url)

    print(f"\n{run.requests_sent} requests; by operation and status {run.by_operation_status}")
    assert not run.failures, "\n\n".join(run.failures)
    statuses = {s for seen in run.by_operation_status.values() for s in seen}
    assert not any(status >= 500 for status in statuses)
    # Valid requests succeeded (their success bodies were checked).
    for name, status in [("createPayment (valid)", 201), ("refundPayment (valid)", 201)]:
        assert run.by_operation_status.get(name, {}).get(status), (name, run.by_operation_status)
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


async def test_the_document_names_its_schemas_for_the_api_and_documents_every_answer(
    service: RunningService,
) -> None:
    document = (await service.client.get("/schema/openapi.json")).json()

    names = set(document["components"]["schemas"])
    assert names >= {"CreatePaymentRequest", "CreatePaymentsRequest", "RefundRequest"}, names
    assert names >= {"Payment", "PaymentView", "Refund", "Problem"}, names
    assert all(name.isidentifier() and "." not in name for name in names), names
    wrong = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                media_types = set(answer.get("content", {}))
                if path == "/health/ready" and status == "503":
                    expected = {"application/json"}  # the readiness report itself
                elif int(status) >= 400:
                    expected = {"application/problem+json"}
                else:
                    continue
                if media_types != expected:
                    wrong.append(f"{method} {path} {status}: {media_types}")
    assert not wrong, wrong
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain"}, metrics
    amount = document["components"]["schemas"]["CreatePaymentRequest"]["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"], amount["multipleOf"]) == (100, 1_000_000, 1)
