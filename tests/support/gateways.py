"""Gateways of the tests' own: the service's gateway, with one call changed (it fails, it
waits, it records). The rest of the Gateway contract goes to the gateway wrapped."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from service.api.dependencies import WriteSide
from service.gateway import Gateway
from tests.support.service import RunningService


class GatewayAround:
    """Every call of `inner`, but those a subclass defines."""

    def __init__(self, inner: Gateway) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


Wrapped = TypeVar("Wrapped", bound=GatewayAround)


def wrap_api_gateway(svc: RunningService, wrap: Callable[[Gateway], Wrapped]) -> Wrapped:
    """The API's gateway (the write side's) replaced by `wrap` of it, which is returned;
    the reconciler keeps the service's own."""
    write: WriteSide = svc.app.state.write_side
    wrapped = wrap(write.gateway)
    svc.app.state.write_side = dataclasses.replace(write, gateway=wrapped)
    return wrapped
