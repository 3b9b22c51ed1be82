"""Settings for a service under test, with per-section overrides."""

from __future__ import annotations

from typing import Any

import msgspec

from service.settings import Settings
from tests.support.postgres import MIGRATED_URLS


def make_settings(
    database_url: str, order_service_url: str, **sections: dict[str, Any]
) -> Settings:
    """Defaults of `litestar.toml`, this test's database and stub, then `sections`.

    Example: make_settings(url, stub.url, gateway={"mode": "async"}).

    A copy of the migrated template (the `database_url` fixture) is not migrated again
    at each start, a connection and a locked transaction less per service: the start-up
    migration has its test in tests/test_migrations.py. Any other database is.
    """
    raw: dict[str, dict[str, Any]] = {
        "database": {
            "url": database_url,
            "pool_min_size": 1,
            "pool_max_size": 8,
            "migrate_on_start": database_url not in MIGRATED_URLS,
        },
        "order_service": {"url": order_service_url},
        "gateway": {"callback_secret": GATEWAY_SECRET},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return msgspec.convert(raw, Settings)


# A fixed Standard Webhooks secret for the tests' gateway callbacks.
GATEWAY_SECRET = "whsec_dGVzdC1nYXRld2F5LXNlY3JldC0xMjM0NTY3ODkw"
