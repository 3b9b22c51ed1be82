"""Checking RFC 9457 problem+json answers."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEMS = "https://payments.example/problems/"


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """A problem+json answer with this status, in the header and in the body (and this type)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    for field in ("type", "title", "detail"):
        assert isinstance(problem[field], str) and problem[field], field
    if slug is not None:
        assert problem["type"] == PROBLEMS + slug, problem
    return problem
