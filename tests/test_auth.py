"""Bearer-token authentication of /api/v1/payments, over real HTTP.

With tokens configured every payments endpoint needs `Authorization: Bearer <token>` (any of
them: rotation); the gateway callback is judged by its signature alone; health, the OpenAPI
document and metrics stay open; tokens never reach a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from service.api.auth import is_loopback, open_access_warning
from service.settings import AuthSettings, load_settings
from tests.support.callbacks import signed_headers
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import PROBLEMS
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

TOKENS = ("token-a", "token-b")
GOOD = {"Authorization": "Bearer token-a"}

checks: Any = load_test_queries()


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 401
    assert problem["type"] == PROBLEMS + "unauthorized", problem
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers


def signed_callback(transaction_id: str, status: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"transaction_id": transaction_id, "status": status}).encode()
    return body, signed_headers(body)


@pytest.fixture
async def authed(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    async with serve(make_settings(database_url, order_stub.url, auth={"tokens": TOKENS})) as svc:
        yield svc


async def pay(client: httpx.AsyncClient, order_id: int, token: str = "token-a") -> dict[str, Any]:
    response = await client.post(
        "/api/v1/payments/",
        json={"order_id": order_id, "amount": 2500},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


# --- every payments endpoint needs a valid token ---------------------------------------------

BAD_AUTHORIZATIONS: dict[str, str | bytes | None] = {
    "missing": None,
    "basic scheme": "Basic dG9rZW4tYTp4",
    "token scheme": "Token token-a",
    "wrong token": "Bearer token-c",
    "prefix of a token": "Bearer token-",
    "token plus a character": "Bearer token-aa",
    "both tokens at once": "Bearer token-a token-b",
    "empty bearer": "Bearer",  # "Bearer " arrives so: HTTP strips trailing whitespace
    "empty quoted bearer": 'Bearer ""',
    "token without scheme": "token-a",
    "case of the token": "Bearer TOKEN-A",
    "latin-1 token": "Bearer tökén-a".encode("latin-1"),
    "invalid utf-8 token": b"Bearer token-a\xff",
}

ENDPOINTS = ["create", "create without slash", "get by id", "get by order", "refund"]


async def call(
    client: httpx.AsyncClient, endpoint: str, payment: dict[str, Any], headers: Any
) -> httpx.Response:
    if endpoint == "create":
        body = {"order_id": payment["order_id"] + 1000, "amount": 1000}
        return await client.post("/api/v1/payments/", json=body, headers=headers)
    if endpoint == "create without slash":
        body = {"order_id": payment["order_id"] + 2000, "amount": 1000}
        return await client.post("/api/v1/payments", json=body, headers=headers)
    if endpoint == "get by id":
        return await client.get(f"/api/v1/payments/{payment['id']}", headers=headers)
    if endpoint == "get by order":
        return await client.get(f"/api/v1/payments/order/{payment['order_id']}", headers=headers)
    body = {"payment_id": payment["id"], "reason": "r"}
    return await client.post("/api/v1/payments/refund", json=body, headers=headers)


async def test_every_payments_endpoint_refuses_a_missing_or_wrong_token_with_401(
    authed: RunningService, db: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    payment = await pay(authed.client, order_id=1)

    for endpoint in ENDPOINTS:
        with subtests.test(endpoint=endpoint):
            for case, authorization in BAD_AUTHORIZATIONS.items():
                headers = {} if authorization is None else {"Authorization": authorization}
                response = await call(authed.client, endpoint, payment, headers)
                assert_unauthorized(response)
                assert "token-a" not in response.text and "token-b" not in response.text, case

            # Nothing was done by any refused call.
            assert int(await checks.count_payments(db)) == 1
            assert int(await checks.count_refunds(db)) == 0
            view = (
                await authed.client.get(f"/api/v1/payments/{payment['id']}", headers=GOOD)
            ).json()
            assert view["status"] == "COMPLETED" and view["refunds"] == []


# What each call answers when it is let through (CONTRACT.md, "Payments API").
SUCCESS = {
    "create": 201,
    "create without slash": 201,
    "get by id": 200,
    "get by order": 200,
    "refund": 201,
}


async def test_every_payments_endpoint_accepts_either_token(
    authed: RunningService, subtests: pytest.Subtests
) -> None:
    for order_id, endpoint in enumerate(ENDPOINTS, start=1):
        with subtests.test(endpoint=endpoint):
            # Rotation: the payment is made with one token, the call under test uses the other.
            payment = await pay(authed.client, order_id=order_id, token="token-b")

            response = await call(authed.client, endpoint, payment, GOOD)

            assert response.status_code == SUCCESS[endpoint], response.text


async def raw_get(url: str, path: str, header_lines: bytes) -> tuple[int, bytes]:
    """A GET written byte for byte (httpx refuses header values with trailing blanks)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\nHost: "
            + host.encode()
            + b"\r\n"
            + header_lines
            + b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer


@pytest.mark.parametrize(
    "header", [b"Authorization: Bearer \r\n", b"Authorization: Bearer \t \r\n"]
)
async def test_an_empty_bearer_sent_byte_for_byte_is_401(
    authed: RunningService, header: bytes
) -> None:
    payment = await pay(authed.client, order_id=3)

    status, answer = await raw_get(authed.url, f"/api/v1/payments/{payment['id']}", header)

    assert status == 401, answer
    assert b"application/problem+json" in answer.lower()
    assert b"www-authenticate: bearer" in answer.lower()


async def test_the_scheme_name_is_case_insensitive(authed: RunningService) -> None:
    # RFC 9110 section 11.1: the auth scheme is case-insensitive; the token is not.
    for scheme in ("bearer", "BEARER", "BeArEr"):
        response = await authed.client.get(
            "/api/v1/payments/order/1", headers={"Authorization": f"{scheme} token-b"}
        )
        assert response.status_code == 404, (scheme, response.text)  # past auth: no payment


async def test_a_401_is_the_same_for_an_existing_and_a_missing_payment(
    authed: RunningService,
) -> None:
    payment = await pay(authed.client, order_id=5)

    existing = await authed.client.get(f"/api/v1/payments/{payment['id']}")
    missing = await authed.client.get("/api/v1/payments/999999")

    assert_unauthorized(existing)
    assert_unauthorized(missing)
    assert existing.content == missing.content  # no hint whether the payment exists


# --- the gateway callback: its signature, not a bearer token ---------------------------------


async def test_the_gateway_callback_needs_no_bearer_token(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    settings = make_settings(
        database_url, order_stub.url, auth={"tokens": TOKENS}, gateway={"mode": "async"}
    )
    async with serve(settings) as svc:
        first = await pay(svc.client, order_id=1)
        second = await pay(svc.client, order_id=2)
        assert first["status"] == second["status"] == "PROCESSING"

        body, headers = signed_callback(first["transaction_id"], "completed")
        settled = await svc.client.post("/api/v1/payments/webhook", content=body, headers=headers)
        # A wrong bearer token is no reason to refuse a correctly signed callback either.
        body, headers = signed_callback(second["transaction_id"], "failed")
        headers["Authorization"] = "Bearer not-a-token"
        failed = await svc.client.post("/api/v1/payments/webhook", content=body, headers=headers)
        # Without a signature it is refused for that, not for the missing bearer token.
        unsigned = await svc.client.post(
            "/api/v1/payments/webhook",
            json={"transaction_id": second["transaction_id"], "status": "completed"},
        )

    assert settled.status_code == 200, settled.text
    assert settled.json() == {"payment_id": first["id"], "status": "COMPLETED"}
    assert failed.status_code == 200, failed.text
    assert failed.json() == {"payment_id": second["id"], "status": "FAILED"}
    assert unsigned.status_code == 401
    assert unsigned.json()["type"] == PROBLEMS + "invalid-signature"
    assert await checks.payment_status(db, payment_id=first["id"]) == "COMPLETED"
    assert await checks.payment_status(db, payment_id=second["id"]) == "FAILED"


# --- what stays open -------------------------------------------------------------------------


async def test_health_schema_and_metrics_stay_open(
    authed: RunningService, subtests: pytest.Subtests
) -> None:
    for path in ["/health/live", "/health/ready", "/schema", "/schema/openapi.json", "/metrics"]:
        with subtests.test(path=path):
            response = await authed.client.get(path)

            assert response.status_code == 200, response.text
            assert "www-authenticate" not in response.headers


async def test_the_openapi_document_declares_the_bearer_scheme_on_the_payments_endpoints(
    authed: RunningService,
) -> None:
    document = (await authed.client.get("/schema/openapi.json")).json()

    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for operation in item.values():
            protected = path.startswith(("/api/v1/payments", "/api/v1/events")) and not (
                path.endswith("/webhook")
            )
            assert (operation.get("security") == [{"bearer": []}]) == protected, path
            if protected:
                assert "401" in operation["responses"], path


async def test_without_tokens_the_openapi_document_declares_no_security_and_no_401(
    service: RunningService,
) -> None:
    document = (await service.client.get("/schema/openapi.json")).json()

    assert "securitySchemes" not in document.get("components", {}), document["components"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "security" not in operation, (method, path)
            if not path.endswith("/webhook"):  # the callback's 401 is its signature's
                assert "401" not in operation["responses"], (method, path)


# --- configuration by environment ------------------------------------------------------------


async def test_tokens_from_payments_api_tokens_guard_the_api(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub
) -> None:
    env = {
        "PAYMENTS_API_TOKENS": "x,y",
        "PAYMENTS_DATABASE_URL": database_url,
        "PAYMENTS_ORDER_SERVICE_URL": order_stub.url,
    }
    settings = load_settings(tmp_path / "absent.toml", env=env)
    assert settings.auth.tokens == ("x", "y")

    async with serve(settings) as svc:
        with_x = await svc.client.post(
            "/api/v1/payments/",
            json={"order_id": 1, "amount": 1000},
            headers={"Authorization": "Bearer x"},
        )
        with_y = await svc.client.get(
            "/api/v1/payments/order/1", headers={"Authorization": "Bearer y"}
        )
        with_both = await svc.client.get(
            "/api/v1/payments/order/1", headers={"Authorization": "Bearer x,y"}
        )
        without = await svc.client.get("/api/v1/payments/order/1")

    assert with_x.status_code == 201, with_x.text
    assert with_y.status_code == 200, with_y.text
    assert_unauthorized(with_both)
    assert_unauthorized(without)


# --- tokens never logged ---------------------------------------------------------------------


def _everything_logged(records: list[logging.LogRecord]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.extend(f"{key}={value!r}" for key, value in vars(record).items())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def test_no_token_appears_in_the_logs(
    authed: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "token-wrong-5e0c1d"
    caplog.set_level(logging.DEBUG)

    refused = await authed.client.post(
        "/api/v1/payments/",
        json={"order_id": 1, "amount": 1000},
        headers={"Authorization": f"Bearer {wrong}", "X-Request-ID": "auth-log-401"},
    )
    created = await authed.client.post(
        "/api/v1/payments/",
        json={"order_id": 2, "amount": 1000},
        headers={"Authorization": "Bearer token-b", "X-Request-ID": "auth-log-201"},
    )
    read = await authed.client.get("/api/v1/payments/order/2", headers=GOOD)

    assert_unauthorized(refused)
    assert created.status_code == 201 and read.status_code == 200
    logged = _everything_logged(caplog.records)
    # The capture works: the payment's audit line, with its request id, is there.
    assert "auth-log-201" in logged, logged
    for secret in (*TOKENS, wrong):
        assert secret not in logged, secret


# --- the start-up warning: authentication off on an address other machines reach ------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_and_localhost_reach_this_machine_only(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "fe80::1"])
def test_any_other_address_is_reachable_from_elsewhere(host: str) -> None:
    assert not is_loopback(host)


def test_a_name_that_does_not_resolve_counts_as_reachable() -> None:
    assert not is_loopback("no-such-host.invalid")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_no_tokens_on_a_reachable_address_is_warned_of_naming_it(host: str) -> None:
    warning = open_access_warning(AuthSettings(), host, 8001)

    assert warning is not None
    assert f"listens on {host} port 8001" in warning
    assert "anyone who can reach it can pay and refund" in warning


@pytest.mark.parametrize(
    ("auth", "host"),
    [
        (AuthSettings(), "127.0.0.1"),
        (AuthSettings(), "::1"),
        (AuthSettings(), "localhost"),
        (AuthSettings(tokens=("t",)), "0.0.0.0"),
        (AuthSettings(read_only_tokens=("r",)), "0.0.0.0"),
    ],
    ids=["loopback", "ipv6-loopback", "localhost", "tokens", "read-only-tokens"],
)
def test_no_warning_on_loopback_or_with_tokens(auth: AuthSettings, host: str) -> None:
    assert open_access_warning(auth, host, 8001) is None
