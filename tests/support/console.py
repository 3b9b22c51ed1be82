"""Reading the operator console's pages in tests: its forms' hidden fields, its figures,
and signing in over plain HTTP."""

from __future__ import annotations

import html
import re

import httpx

TOKENS = {"tokens": ["full-token-1"], "read_only_tokens": ["read-only-token-1"]}
FULL = "full-token-1"
READ_ONLY = "read-only-token-1"

FORM = re.compile(r'<form\b[^>]*\baction="(?P<action>[^"]*)"[^>]*>(?P<body>.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


def forms(page: str) -> dict[str, dict[str, str]]:
    """Every form of a page by its action, with its hidden fields."""
    return {
        html.unescape(found["action"]): {
            hidden["name"]: html.unescape(hidden["value"])
            for hidden in HIDDEN.finditer(found["body"])
        }
        for found in FORM.finditer(page)
    }


def csrf_of(page: str) -> str:
    """The CSRF token of the page's forms (every form of a page carries its session's)."""
    match = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert match is not None, "no CSRF token on the page"
    return html.unescape(match[1])


def figure(page: str, name: str) -> str:
    """The text of the element marked data-figure="name"."""
    found = re.search(rf'data-figure="{re.escape(name)}"[^>]*>([^<]*)<', page)
    assert found is not None, f"no figure {name}"
    return html.unescape(found[1]).strip()


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    """Sign in as a browser does: the sign-in page, then its form with the token."""
    page = await client.get("/console/")
    return await client.post(
        "/console/sign-in",
        data={"csrf_token": csrf_of(page.text), "token": token, "next": "/console/"},
    )
