"""The payments list (GET /api/v1/payments) as tests read it once it holds what they made.

A payment is listed once every transaction older than the one that created it has
ended, on the whole server: a test that lists right after creating may find the newest
missing for a moment while some other write runs (on the test server, the housekeeping
that empties and copies databases for the next tests). Tests that mean "everything I
created" wait for it. One payment (GET /api/v1/payments/{id}) is read here too, and
waited for until it has a status.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.relay_helpers import wait_until

LIST = "/api/v1/payments"


async def get_payment(client: httpx.AsyncClient, payment_id: int) -> dict[str, Any]:
    """GET /api/v1/payments/{payment_id}, which must be found."""
    response = await client.get(f"{LIST}/{payment_id}")
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def wait_for_status(
    client: httpx.AsyncClient,
    payment_id: int,
    status: str,
    what: str | None = None,
    within: float = 15.0,
) -> None:
    """Poll the payment until it has `status`; fail the test after `within` seconds."""

    async def reached() -> bool:
        now: str = (await get_payment(client, payment_id))["status"]
        return now == status

    await wait_until(reached, within, what or f"payment {payment_id} {status}")


async def listed(
    client: httpx.AsyncClient, count: int, headers: dict[str, str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    """Every page of the list (with `params`) once it holds `count` payments."""
    found: list[dict[str, Any]] = []

    async def holds_them() -> bool:
        nonlocal found
        found = []
        while True:
            cursor = {"starting_after": found[-1]["id"]} if found else {}
            response = await client.get(LIST, params={**params, **cursor}, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            found += body["data"]
            if not body["has_more"]:
                return len(found) == count

    await wait_until(holds_them, what=f"{count} payments listed")
    return found
