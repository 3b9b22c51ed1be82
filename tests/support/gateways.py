"""Gateways of the tests' own: the service's gateway, with one call changed (it fails, it
waits, it records). The rest of the Gateway contract goes to the gateway wrapped."""

from __future__ import annotations

from typing import Any

from service.gateway import Gateway


class GatewayAround:
    """Every call of `inner`, but those a subclass defines."""

    def __init__(self, inner: Gateway) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
