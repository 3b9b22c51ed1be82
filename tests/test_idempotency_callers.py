"""Idempotency-Keys are the caller's own, over real HTTP on a real database.

A key is scoped by a fingerprint of the bearer token that sent it (SHA-256, never the token),
'' when authentication is off: two callers choosing the same key never see each other's
stored answers, the same caller replays as before, and keys stored before the scoping
(migration 0015) stay valid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from service.db import migrate as migrate_module
from service.db.migrate import migrate, migration_files
from tests.support.order_stub import OrderServiceStub
from tests.support.postgres import TestPostgres
from tests.support.problems import assert_problem
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

PAYMENTS = "/api/v1/payments/"
CREATE_ENDPOINT = "POST /api/v1/payments"
REPLAYED = "idempotent-replayed"
ALICE = {"Authorization": "Bearer alice-token", "Idempotency-Key": "shared-key"}
BOB = {"Authorization": "Bearer bob-token", "Idempotency-Key": "shared-key"}
SCOPING_MIGRATION = "0015"

checks: Any = load_test_queries()


@pytest.fixture
async def svc(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    auth = {"tokens": ["alice-token", "bob-token"], "read_only_tokens": ["reader"]}
    async with serve(make_settings(database_url, order_stub.url, auth=auth)) as running:
        yield running


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def callers(db: asyncpg.Connection, key: str) -> list[tuple[str, int | None]]:
    rows = checks.idempotency_key_callers(db, endpoint=CREATE_ENDPOINT, key=key)
    return [(row["caller"], row["response_status"]) async for row in rows]


async def test_the_same_key_from_two_tokens_gives_two_independent_answers(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    alice = await svc.client.post(PAYMENTS, json={"order_id": 1, "amount": 1000}, headers=ALICE)
    # Another body under the same key: for one caller that would be 422; here it is Bob's own.
    bob = await svc.client.post(PAYMENTS, json={"order_id": 2, "amount": 2000}, headers=BOB)

    assert alice.status_code == 201, alice.text
    assert bob.status_code == 201, bob.text
    assert REPLAYED not in alice.headers and REPLAYED not in bob.headers
    assert alice.json()["order_id"] == 1 and bob.json()["order_id"] == 2
    assert int(await checks.count_payments(db)) == 2

    # Each replays its own answer, never the other's.
    alice_again = await svc.client.post(
        PAYMENTS, json={"order_id": 1, "amount": 1000}, headers=ALICE
    )
    bob_again = await svc.client.post(PAYMENTS, json={"order_id": 2, "amount": 2000}, headers=BOB)
    assert alice_again.headers.get(REPLAYED) == "true" and alice_again.content == alice.content
    assert bob_again.headers.get(REPLAYED) == "true" and bob_again.content == bob.content
    assert int(await checks.count_payments(db)) == 2


async def test_the_same_caller_with_another_body_is_still_422(svc: RunningService) -> None:
    first = await svc.client.post(PAYMENTS, json={"order_id": 3, "amount": 1000}, headers=ALICE)
    other = await svc.client.post(PAYMENTS, json={"order_id": 4, "amount": 1000}, headers=ALICE)

    assert first.status_code == 201, first.text
    assert_problem(other, 422, "idempotency-key-reused")


async def test_a_key_is_stored_under_a_fingerprint_of_the_token_never_the_token(
    svc: RunningService, db: asyncpg.Connection
) -> None:
    await svc.client.post(PAYMENTS, json={"order_id": 5, "amount": 1000}, headers=ALICE)
    await svc.client.post(PAYMENTS, json={"order_id": 6, "amount": 1000}, headers=BOB)

    stored = await callers(db, "shared-key")

    assert stored == sorted([(fingerprint("alice-token"), 201), (fingerprint("bob-token"), 201)])
    assert all("token" not in caller for caller, _ in stored)


async def test_without_authentication_the_caller_is_empty_and_keys_replay_as_before(
    service: RunningService, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "open-key"}
    first = await service.client.post(
        PAYMENTS, json={"order_id": 8, "amount": 1000}, headers=headers
    )
    again = await service.client.post(
        PAYMENTS, json={"order_id": 8, "amount": 1000}, headers=headers
    )

    assert first.status_code == 201, first.text
    assert again.headers.get(REPLAYED) == "true" and again.content == first.content
    assert await callers(db, "open-key") == [("", 201)]


# --- keys stored before the scoping ----------------------------------------------------------


@pytest.fixture
def unscoped_database_url(postgres: TestPostgres) -> Iterator[str]:
    """A database migrated up to, not including, the per-caller keys."""
    name, url = postgres.create_database()
    yield url
    postgres.drop_database(name)


async def test_a_key_stored_before_the_scoping_migration_is_still_replayed(
    unscoped_database_url: str, order_stub: OrderServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = migration_files()
    before = [f for f in everything if f.name < SCOPING_MIGRATION]
    monkeypatch.setattr(migrate_module, "migration_files", lambda *_: before)
    await migrate(unscoped_database_url)
    body = json.dumps({"order_id": 9, "amount": 1000}).encode()
    answer = b'{"stored":"before the upgrade"}'
    connection = await asyncpg.connect(unscoped_database_url)
    try:
        await checks.insert_answered_key_without_caller(
            connection,
            endpoint=CREATE_ENDPOINT,
            key="old-key",
            request_hash=hashlib.sha256(body).digest(),
            response_status=201,
            response_body=answer,
        )
    finally:
        await connection.close()
    monkeypatch.setattr(migrate_module, "migration_files", lambda *_: everything)

    settings = make_settings(unscoped_database_url, order_stub.url)
    async with serve(settings) as running:  # migrates on start: applies 0015
        replay = await running.client.post(
            PAYMENTS,
            content=body,
            headers={"Idempotency-Key": "old-key", "content-type": "application/json"},
        )

    assert replay.status_code == 201, replay.text
    assert replay.headers.get(REPLAYED) == "true"
    assert replay.content == answer
