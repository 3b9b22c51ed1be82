"""Rotating the webhook and gateway secrets without downtime: several configured at once.

Outgoing order webhooks carry one signature per configured secret, so the Order Service
verifies them with the old secret or the new one alone; incoming gateway callbacks are
accepted when signed with any configured secret. Lists come from TOML or the environment.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import ConfigError, load_settings
from service.signing import SignatureError, secret_key, verify
from tests.support.callbacks import signed_headers
from tests.support.order_stub import OrderServiceStub
from tests.support.problems import assert_problem
from tests.support.relay_helpers import create_payments, relay_settings, running_relay
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings


def whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


OLD = whsec(b"the-old-secret-being-retired-01")
NEW = whsec(b"the-new-secret-being-rolled-02")
THIRD = whsec(b"a-secret-nobody-configured-03")
WEBHOOK = "/api/v1/payments/webhook"
ASYNC_GATEWAY = {"mode": "async", "reconcile_after_seconds": 3600.0}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PAYMENTS_* variable of the developer's shell leaks into the settings tests."""
    import os

    for variable in list(os.environ):
        if variable.startswith("PAYMENTS_"):
            monkeypatch.delenv(variable)


# --- order webhooks: one signature per secret ------------------------------------------------


async def test_a_webhook_signed_with_two_secrets_verifies_with_each_secret_alone(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    # As PAYMENTS_WEBHOOK_SECRET carries them: whitespace-separated.
    settings = relay_settings(database_url, order_stub.url, webhook_secret=f"{OLD} {NEW}")
    async with running_relay(database_url, settings):
        await create_payments(database_url, [5151])
        [call] = await order_stub.wait_for_accepted(1)

    header = call.headers["webhook-signature"]
    assert len(header.split(" ")) == 2 and all(s.startswith("v1,") for s in header.split(" "))
    for receiver_secret in (OLD, NEW):  # an Order Service that knows only one of them
        verify(
            secret_key(receiver_secret),
            call.headers["webhook-id"],
            call.headers["webhook-timestamp"],
            header,
            call.raw_body,
        )
    with pytest.raises(SignatureError):
        verify(
            secret_key(THIRD),
            call.headers["webhook-id"],
            call.headers["webhook-timestamp"],
            header,
            call.raw_body,
        )


async def test_a_single_secret_still_sends_exactly_one_signature(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    settings = relay_settings(database_url, order_stub.url, webhook_secret=OLD)
    async with running_relay(database_url, settings):
        await create_payments(database_url, [5152])
        [call] = await order_stub.wait_for_accepted(1)

    header = call.headers["webhook-signature"]
    assert " " not in header and header.startswith("v1,")
    verify(
        secret_key(OLD),
        call.headers["webhook-id"],
        call.headers["webhook-timestamp"],
        header,
        call.raw_body,
    )


# --- gateway callbacks: any configured secret ------------------------------------------------


@pytest.fixture
async def rotating(
    database_url: str, order_stub: OrderServiceStub
) -> AsyncIterator[RunningService]:
    gateway: dict[str, Any] = {**ASYNC_GATEWAY, "callback_secret": [OLD, NEW]}
    async with serve(make_settings(database_url, order_stub.url, gateway=gateway)) as running:
        yield running


async def processing_payment(client: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
    response = await client.post("/api/v1/payments/", json={"order_id": order_id, "amount": 900})
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    assert payment["status"] == "PROCESSING"
    return payment


async def settle(client: httpx.AsyncClient, transaction_id: str, secret: str) -> httpx.Response:
    body = json.dumps({"transaction_id": transaction_id, "status": "completed"}).encode()
    headers = signed_headers(body, key=secret_key(secret))
    return await client.post(WEBHOOK, content=body, headers=headers)


@pytest.mark.parametrize("secret", [OLD, NEW], ids=["signed with the old", "signed with the new"])
async def test_a_callback_signed_with_either_configured_secret_is_accepted(
    rotating: RunningService, secret: str
) -> None:
    payment = await processing_payment(rotating.client, order_id=1)

    response = await settle(rotating.client, payment["transaction_id"], secret)

    assert response.status_code == 200, response.text
    assert response.json() == {"payment_id": payment["id"], "status": "COMPLETED"}


async def test_a_callback_signed_with_a_third_secret_is_refused_with_401(
    rotating: RunningService,
) -> None:
    payment = await processing_payment(rotating.client, order_id=2)

    response = await settle(rotating.client, payment["transaction_id"], THIRD)

    assert_problem(response, 401, "invalid-signature")
    reread = await rotating.client.get(f"/api/v1/payments/{payment['id']}")
    assert reread.json()["status"] == "PROCESSING"


# --- configuration: lists from TOML and the environment, malformed ones refused --------------


def test_secrets_are_a_toml_list_or_a_string(tmp_path: Path) -> None:
    path = tmp_path / "payments.toml"
    path.write_text(
        f'[order_service]\nwebhook_secret = ["{OLD}", "{NEW}"]\n'
        f'[gateway]\ncallback_secret = "{OLD}"\n',
        encoding="utf-8",
    )

    settings = load_settings(path, env={})

    assert settings.order_service.webhook_secrets == (OLD, NEW)
    assert settings.gateway.callback_secrets == (OLD,)


@pytest.mark.parametrize("separator", [" ", "\n", "\t", "  \n "])
def test_secret_variables_carry_several_secrets_separated_by_whitespace(
    tmp_path: Path, separator: str
) -> None:
    env = {
        "PAYMENTS_WEBHOOK_SECRET": f" {OLD}{separator}{NEW} ",
        "PAYMENTS_GATEWAY_SECRET": f"{NEW}{separator}{OLD}",
    }

    settings = load_settings(tmp_path / "absent.toml", env=env)

    assert settings.order_service.webhook_secrets == (OLD, NEW)
    assert settings.gateway.callback_secrets == (NEW, OLD)


def test_no_secret_is_an_empty_list(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.toml", env={"PAYMENTS_WEBHOOK_SECRET": ""})
    assert settings.order_service.webhook_secrets == ()
    assert settings.gateway.callback_secrets == ()


@pytest.mark.parametrize(
    ("variable", "name"),
    [
        ("PAYMENTS_WEBHOOK_SECRET", "order_service.webhook_secret"),
        ("PAYMENTS_GATEWAY_SECRET", "gateway.callback_secret"),
    ],
)
def test_a_malformed_secret_in_a_list_refuses_to_start_naming_which(
    tmp_path: Path, variable: str, name: str
) -> None:
    malformed = "whsec_not*base64"
    env = {variable: f"{OLD} {malformed} {NEW}"}

    with pytest.raises(ConfigError, match=rf"^{name} \(secret 2 of 3\): .*base64") as error:
        load_settings(tmp_path / "absent.toml", env=env)
    assert malformed not in str(error.value) and OLD not in str(error.value)


def test_an_empty_string_in_a_toml_list_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "payments.toml"
    path.write_text(f'[gateway]\ncallback_secret = ["{OLD}", ""]\n', encoding="utf-8")

    with pytest.raises(ConfigError, match=r"gateway.callback_secret \(secret 2 of 2\)"):
        load_settings(path, env={})
