"""Read-only bearer tokens, over real HTTP: they may read the payments API and nothing else.

The write routes are found in the app's own routes (every handler of the bearer-protected
payments API for a method other than GET, HEAD, OPTIONS), so a route added later is covered
without touching this file.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from service.api.auth import READ_METHODS, BearerAuthMiddleware
from service.settings import ConfigError, load_settings
from tests.support.listing import listed
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import PROBLEMS, assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

FULL = {"Authorization": "Bearer full-token"}
READ_ONLY = {"Authorization": "Bearer read-only-token"}
AUTH = {"tokens": ["full-token"], "read_only_tokens": ["read-only-token", "reader-2"]}

checks: Any = load_test_queries()


@pytest.fixture
async def svc(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    async with serve(make_settings(database_url, order_stub.url, auth=AUTH)) as running:
        yield running


def write_routes(app: Litestar) -> list[tuple[str, str, HTTPRoute]]:
    """(method, path template, route) of every write of the bearer-protected payments API."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            protected = any(
                isinstance(m, BearerAuthMiddleware) for m in handler.resolve_middleware()
            )
            for method in sorted(handler.http_methods - READ_METHODS):
                if protected:
                    found.append((method, route.path_format, route))
    return found


def concrete_path(route: HTTPRoute, payment_id: int) -> str:
    """The route's path with a value of the right type for each parameter (an existing
    payment's id for the integers, so that the route itself would find something)."""
    values = {
        name: uuid.uuid4() if parameter.type is uuid.UUID else payment_id
        for name, parameter in route.path_parameters.items()
    }
    return route.path_format.format(**values)


async def pay(svc: RunningService, order_id: int) -> dict[str, Any]:
    body = {"order_id": order_id, "amount": 1200}
    response = await svc.client.post("/api/v1/payments/", json=body, headers=FULL)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def test_a_read_only_token_gets_403_on_every_write_route_and_changes_nothing(
    svc: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await pay(svc, order_id=1)
    routes = write_routes(svc.app)
    # The enumeration sees the writes there are today, so it is not vacuous.
    assert {("POST", "/api/v1/payments"), ("POST", "/api/v1/payments/refund")} <= {
        (method, path) for method, path, _ in routes
    }
    assert ("POST", "/api/v1/payments/batch") in {(m, p) for m, p, _ in routes}

    for method, path, route in routes:
        with subtests.test(method=method, path=path):
            response = await svc.client.request(
                method,
                concrete_path(route, payment["id"]),
                json={"order_id": 99, "amount": 1000, "payment_id": payment["id"], "reason": "r"},
                headers={**READ_ONLY, "Idempotency-Key": f"ro-{method}-{path}"},
            )
            problem = assert_problem(response, 403, "read-only-token")
            assert problem["title"] == "Read-only token"
            assert method in problem["detail"]
            assert "read-only-token" not in response.headers.get("www-authenticate", "")

    assert int(await checks.count_payments(db)) == 1
    assert int(await checks.count_refunds(db)) == 0
    # A read-only token cannot claim an Idempotency-Key at all.
    assert int(await checks.count_idempotency_keys(db)) == 0


async def test_a_read_only_token_reads_every_read_endpoint(svc: RunningService) -> None:
    payment = await pay(svc, order_id=7)

    by_id = await svc.client.get(f"/api/v1/payments/{payment['id']}", headers=READ_ONLY)
    by_order = await svc.client.get("/api/v1/payments/order/7", headers=READ_ONLY)
    in_the_list = await listed(svc.client, 1, headers=READ_ONLY)
    second_reader = await svc.client.get(
        "/api/v1/payments?limit=1", headers={"Authorization": "Bearer reader-2"}
    )
    options = await svc.client.options("/api/v1/payments", headers=READ_ONLY)

    assert by_id.status_code == 200 and by_id.json()["id"] == payment["id"], by_id.text
    assert by_order.status_code == 200 and by_order.json()["order_id"] == 7, by_order.text
    assert [p["id"] for p in in_the_list] == [payment["id"]]
    assert second_reader.status_code == 200, second_reader.text
    assert options.status_code < 400, options.text


async def test_a_full_token_still_writes(svc: RunningService, db: asyncpg.Connection) -> None:
    payment = await pay(svc, order_id=3)
    refund = await svc.client.post(
        "/api/v1/payments/refund",
        json={"payment_id": payment["id"], "reason": "changed mind"},
        headers=FULL,
    )

    assert refund.status_code == 201, refund.text
    assert int(await checks.count_refunds(db)) == 1


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer unknown-token", "Bearer read-only-token-x", "Basic cmVhZC1vbmx5LXRva2Vu"],
    ids=["missing", "unknown", "longer than a read-only token", "basic scheme"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_missing_or_unknown_token_is_still_401(
    svc: RunningService, authorization: str | None, method: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"order_id": 5, "amount": 1000} if method == "POST" else None

    response = await svc.client.request(method, "/api/v1/payments", json=body, headers=headers)

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_read_only_tokens_alone_turn_authentication_on(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    settings = make_settings(database_url, order_stub.url, auth={"read_only_tokens": ["r1"]})
    async with serve(settings) as svc:
        anonymous = await svc.client.get("/api/v1/payments")
        reader = await svc.client.get("/api/v1/payments", headers={"Authorization": "Bearer r1"})
        create = await svc.client.post(
            "/api/v1/payments/",
            json={"order_id": 1, "amount": 1000},
            headers={"Authorization": "Bearer r1"},
        )

    assert_problem(anonymous, 401, "unauthorized")
    assert reader.status_code == 200, reader.text
    assert_problem(create, 403, "read-only-token")


# --- configuration ---------------------------------------------------------------------------


def test_read_only_tokens_come_from_toml_or_a_comma_separated_variable(tmp_path: Path) -> None:
    path = tmp_path / "payments.toml"
    path.write_text('[auth]\ntokens = ["w"]\nread_only_tokens = ["r1", "r2"]\n', encoding="utf-8")

    from_file = load_settings(path, env={})
    from_env = load_settings(path, env={"PAYMENTS_API_READ_ONLY_TOKENS": " r3 , r4,"})

    assert from_file.auth.read_only_tokens == ("r1", "r2")
    assert from_env.auth.read_only_tokens == ("r3", "r4")
    assert from_env.auth.tokens == ("w",)


def test_a_token_both_full_and_read_only_refuses_to_start(tmp_path: Path) -> None:
    env = {"PAYMENTS_API_TOKENS": "a,b", "PAYMENTS_API_READ_ONLY_TOKENS": "b"}
    with pytest.raises(ConfigError, match="both"):
        load_settings(tmp_path / "absent.toml", env=env)


# --- the OpenAPI document --------------------------------------------------------------------


async def test_the_document_gives_writes_a_403_and_the_full_token_only(svc: RunningService) -> None:
    """Every protected operation, whichever controller added it (events too)."""
    document = (await svc.client.get("/schema/openapi.json")).json()

    schemes = document["components"]["securitySchemes"]
    assert "read-only" in schemes["bearer"]["description"]
    assert "GET" in schemes["readOnlyBearer"]["description"]
    written = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "security" not in operation:  # open: health, the gateway callback, ...
                assert not path.startswith("/api/v1/payments") or path.endswith("/webhook")
                continue
            if method.upper() in READ_METHODS:
                assert operation["security"] == [{"bearer": []}, {"readOnlyBearer": []}], path
                assert "403" not in operation["responses"], (method, path)
            else:
                written += 1
                assert operation["security"] == [{"bearer": []}], (method, path)
                assert PROBLEMS + "read-only-token" in operation["responses"]["403"]["description"]
    assert written >= 3


async def test_without_read_only_tokens_no_operation_documents_403(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    settings = make_settings(database_url, order_stub.url, auth={"tokens": ["t"]})
    async with serve(settings) as svc:
        document = (await svc.client.get("/schema/openapi.json")).json()

    assert set(document["components"]["securitySchemes"]) == {"bearer"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "403" not in operation["responses"], (method, path)
