"""Settings for a service under test, with per-section overrides."""

from __future__ import annotations

from typing import Any

import msgspec

from service.settings import Settings


def make_settings(
    database_url: str, order_service_url: str, **sections: dict[str, Any]
) -> Settings:
    """Defaults of `litestar.toml`, this test's database and stub, then `sections`.

    Example: make_settings(url, stub.url, gateway={"mode": "async"}).
    """
    raw: dict[str, dict[str, Any]] = {
        "database": {"url": database_url, "pool_min_size": 1, "pool_max_size": 8},
        "order_service": {"url": order_service_url},
        "gateway": {"callback_secret": GATEWAY_SECRET},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return msgspec.convert(raw, Settings)


# A fixed Standard Webhooks secret for the tests' gateway callbacks.
GATEWAY_SECRET = "whsec_dGVzdC1nYXRld2F5LXNlY3JldC0xMjM0NTY3ODkw"
