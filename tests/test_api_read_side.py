"""The read side over real HTTP: GET by payment id, GET by order id, and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.problems import assert_problem
from tests.support.service import RunningService

PAYMENTS = "/api/v1/payments/"


# --- helpers ---------------------------------------------------------------------------------


async def create_payment(
    client: httpx.AsyncClient, order_id: int = 1, amount: int = 5000
) -> dict[str, Any]:
    response = await client.post(PAYMENTS, json={"order_id": order_id, "amount": amount})
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


def assert_resource(response: httpx.Response, created: dict[str, Any]) -> dict[str, Any]:
    """200 with the created payment's fields, unchanged, plus its (empty) refunds and its
    one attempt, the create."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    payment: dict[str, Any] = response.json()
    attempt = {key: created[key] for key in ("transaction_id", "status", "created_at")}
    assert payment == {**created, "refunds": [], "attempts": [{**attempt, "failure_code": None}]}
    return payment


# --- GET /api/v1/payments/{payment_id} -------------------------------------------------------


async def test_get_by_id_is_the_payment_with_an_empty_refunds_list(
    service: RunningService,
) -> None:
    created = await create_payment(service.client, order_id=3, amount=89800)

    response = await service.client.get(f"/api/v1/payments/{created['id']}")

    payment = assert_resource(response, created)
    assert payment["amount"] == 89800.0
    assert payment["status"] == "COMPLETED"


async def test_get_by_id_tells_payments_apart(service: RunningService) -> None:
    first = await create_payment(service.client, order_id=1)
    second = await create_payment(service.client, order_id=2, amount=777)

    assert_resource(await service.client.get(f"/api/v1/payments/{first['id']}"), first)
    assert_resource(await service.client.get(f"/api/v1/payments/{second['id']}"), second)


async def test_an_unknown_payment_is_404(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    for payment_id in ["1", "2", "12345", "0", "-1", str(2**63 - 1)]:
        with subtests.test(payment_id=payment_id):
            # Payment 1 exists only after a create: this database is fresh.
            assert_problem(await service.client.get(f"/api/v1/payments/{payment_id}"), 404)


async def test_a_non_integer_payment_id_is_400(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    await create_payment(service.client)  # "1..." must not be read as payment 1

    for raw in ["abc", "1.5", "1e3", "0x10", "1a", "one", "-", "1-", "%20"]:
        with subtests.test(raw=raw):
            assert_problem(await service.client.get(f"/api/v1/payments/{raw}"), 400)


async def test_a_malformed_signed_payment_id_is_400_not_500(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    for raw in ["--1", "1--", "-+1"]:
        with subtests.test(raw=raw):
            assert_problem(await service.client.get(f"/api/v1/payments/{raw}"), 400)


async def test_a_huge_payment_id_is_404_not_500(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    for payment_id in [
        "99999999999999999999999",
        str(2**63),
        str(2**64),
        "-99999999999999999999999",
    ]:
        with subtests.test(payment_id=payment_id):
            assert_problem(await service.client.get(f"/api/v1/payments/{payment_id}"), 404)


async def test_an_integer_payment_id_of_any_length_is_404_not_400(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    """The contract keeps 400 for a non-integer id; a long run of digits is an integer."""

    for digits in [26, 30, 100]:
        with subtests.test(digits=digits):
            assert_problem(await service.client.get(f"/api/v1/payments/{'9' * digits}"), 404)


# --- GET /api/v1/payments/order/{order_id} ---------------------------------------------------


async def test_get_by_order_is_the_same_resource_as_get_by_id(service: RunningService) -> None:
    created = await create_payment(service.client, order_id=123)

    by_order = await service.client.get("/api/v1/payments/order/123")
    by_id = await service.client.get(f"/api/v1/payments/{created['id']}")

    assert assert_resource(by_order, created) == by_id.json()


@pytest.mark.parametrize("order_id", [1, 2**63 - 1], ids=["smallest", "largest"])
async def test_the_smallest_and_largest_order_ids_are_paid_and_found_by_order(
    service: RunningService, order_id: int
) -> None:
    created = await create_payment(service.client, order_id=order_id)

    assert created["order_id"] == order_id
    assert_resource(await service.client.get(f"/api/v1/payments/order/{order_id}"), created)


async def test_get_by_order_shows_the_refund_after_a_refund(service: RunningService) -> None:
    created = await create_payment(service.client, order_id=8)
    refund = await service.client.post(
        "/api/v1/payments/refund", json={"payment_id": created["id"], "reason": "cancelled"}
    )
    assert refund.status_code == 201, refund.text

    response = await service.client.get("/api/v1/payments/order/8")

    assert response.status_code == 200, response.text
    payment = response.json()
    assert payment["status"] == "REFUNDED"
    assert [r["id"] for r in payment["refunds"]] == [refund.json()["id"]]
    assert payment["refunds"][0]["amount"] == created["amount"]


async def test_an_order_without_a_payment_is_404(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    await create_payment(service.client, order_id=5)  # another order's payment

    for order_id in ["1", "2", "0", "-1", str(2**63 - 1), str(2**63), "99999999999999999999999"]:
        with subtests.test(order_id=order_id):
            assert_problem(await service.client.get(f"/api/v1/payments/order/{order_id}"), 404)


async def test_a_non_integer_order_id_is_404(
    service: RunningService, subtests: pytest.Subtests
) -> None:
    await create_payment(service.client, order_id=1)  # "1..." must not be read as order 1

    for raw in ["abc", "1.5", "--1"]:
        with subtests.test(raw=raw):
            assert_problem(await service.client.get(f"/api/v1/payments/order/{raw}"), 404)


# --- OpenAPI ---------------------------------------------------------------------------------

ENDPOINTS = {
    ("post", "/api/v1/payments"),
    ("get", "/api/v1/payments"),
    ("post", "/api/v1/payments/batch"),
    ("get", "/api/v1/payments/{payment_id}"),
    ("get", "/api/v1/payments/order/{order_id}"),
    ("post", "/api/v1/payments/refund"),
    ("post", "/api/v1/payments/{payment_id}/retry"),
    ("post", "/api/v1/payments/webhook"),
}


async def test_the_openapi_document_lists_the_payments_endpoints(service: RunningService) -> None:
    response = await service.client.get("/schema/openapi.json")

    assert response.status_code == 200, response.text
    document = response.json()
    assert document["openapi"].startswith("3.")
    operations = {
        (method.lower(), path.rstrip("/") or "/")
        for path, item in document["paths"].items()
        for method in item
        if method.lower() in {"get", "post", "put", "patch", "delete"}
    }
    assert operations >= ENDPOINTS
    payment_paths = {op for op in operations if op[1].startswith("/api/v1/payments")}
    assert payment_paths == ENDPOINTS
