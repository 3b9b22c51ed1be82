"""The payments list (GET /api/v1/payments) as tests read it once it holds what they made.

A payment is listed once every transaction older than the one that created it has
ended, on the whole server: a test that lists right after creating may find the newest
missing for a moment while some other write runs (on the test server, the housekeeping
that empties and copies databases for the next tests). Tests that mean "everything I
created" wait for it.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.relay_helpers import wait_until

LIST = "/api/v1/payments"


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
