"""localstripe (PyPI: a stateful fake Stripe server) as a child process on a free loopback
port, and what a test does with it that a buyer's browser or Stripe's dashboard would.

Run as `python -m tests.support.localstripe [--rate-limit N]` this module is the launcher:
it serves localstripe's own aiohttp app, with its store kept in memory only
(`keep_store_in_memory`), behind a front door that records every API request and, with
`--rate-limit N`, answers Stripe's 429 `rate_limit` error past N requests in any second
(localstripe itself never answers 429), and keeps Stripe's promise on Idempotency-Key that
localstripe ignores: a POST sent again under a key answers what the first one did, without
running again (one with other parameters is Stripe's 400 `idempotency_error`). It prints
its port, then serves until stopped.
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from tests.support.paths import PROJECT_ROOT

# localstripe takes any key of this shape; Stripe's test mode keys look the same.
API_KEY = "sk_test_localstripe"
PUBLISHABLE_KEY = "pk_test_localstripe"
STARTUP_SECONDS = 20.0
LAUNCHER = [sys.executable, "-m", "tests.support.localstripe"]


def keep_store_in_memory() -> None:
    """Stop localstripe pickling its whole store after every write.

    It does so to one hard-coded file (/tmp/localstripe.pickle), from `Store.dump_to_disk`,
    which the store calls on every item set or deleted and a middleware after every
    POST, PUT and DELETE: O(objects) per write (a batch of a thousand charges slows down
    as it goes), and a file shared by every localstripe on the machine, parallel test
    processes included. The tests need neither: each server starts empty and ends with
    its process. The one private name this relies on is checked here, and
    tests/test_stripe_gateway.py fails when a localstripe upgrade moves the writes elsewhere.
    """
    from localstripe import resources

    if not callable(getattr(resources.Store, "dump_to_disk", None)):
        raise RuntimeError(
            "localstripe.resources.Store.dump_to_disk is gone: this localstripe writes its "
            "store some other way, which tests/support/localstripe.py must turn off"
        )

    def skip_dump(self: object) -> None:
        return None

    resources.Store.dump_to_disk = skip_dump  # type: ignore[method-assign]


def front_door(rate_limit: int) -> Any:
    """An aiohttp middleware in front of localstripe's own: records each API request; past
    `rate_limit` requests (0: no limit) with the secret key in the last second answers as
    Stripe does when an account sends too many; answers a POST sent again under its
    Idempotency-Key with the first one's answer, as Stripe does (it keeps keys 24 hours;
    here, for the life of the process). `/_launcher/requests` and `/_launcher/stats` tell
    a test what it saw."""
    from aiohttp import web

    recorded: list[dict[str, Any]] = []
    stats = {"requests": 0, "answered_429": 0, "replayed": 0}
    # Idempotency-Key -> (the first request's parameters, its answer's status and body).
    answered: dict[str, tuple[str, int, bytes]] = {}
    # Send times of the requests let through in the last second: a sliding window, so
    # that no second whatever its start holds more than `rate_limit`.
    window: collections.deque[float] = collections.deque()

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/_launcher/requests":
            return web.json_response(recorded)
        if request.path == "/_launcher/stats":
            return web.json_response(stats)
        if not request.path.startswith("/v1/"):
            return await handler(request)
        stats["requests"] += 1
        recorded.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "idempotency_key": request.headers.get("Idempotency-Key"),
                "body": await request.text(),
            }
        )
        # The buyer's browser (3-D Secure) speaks with the publishable key, counted apart
        # at Stripe; the limit is the secret key's.
        if rate_limit and "Authorization" in request.headers:
            now = time.monotonic()
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= rate_limit:
                stats["answered_429"] += 1
                return web.json_response(
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "rate_limit",
                            "message": "Too many requests hit the API too quickly.",
                        }
                    },
                    status=429,
                )
            window.append(now)
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or key is None:
            return await handler(request)
        parameters = await request.text()
        if key in answered:
            first_parameters, status, body = answered[key]
            if first_parameters != parameters:
                return web.json_response(
                    {
                        "error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with "
                            "the same parameters they were first used with.",
                        }
                    },
                    status=400,
                )
            stats["replayed"] += 1
            return web.Response(
                body=body,
                status=status,
                content_type="application/json",
                headers={"Idempotent-Replayed": "true", "Idempotency-Key": key},
            )
        response = await handler(request)
        if isinstance(response, web.Response) and response.body is not None:
            answered[key] = (parameters, response.status, bytes(response.body))  # type: ignore[arg-type]
        return response

    return middleware


def launch(rate_limit: int) -> None:
    """Serve localstripe on a free loopback port (printed first) until terminated."""
    from aiohttp import web

    keep_store_in_memory()
    from localstripe import server

    # Before localstripe's own middlewares (its error and auth handling): a request turned
    # away at the door never reaches them, as one turned away by Stripe's limiter.
    server.app.middlewares.insert(0, front_door(rate_limit))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    web.run_app(server.app, sock=listener, print=None, access_log=None)


class LocalStripe:
    """A localstripe child process (see the module's docstring)."""

    def __init__(self, *, rate_limit: int = 0) -> None:
        self.rate_limit = rate_limit
        self.api_key = API_KEY
        self.port = 0
        self._log = Path(tempfile.mkstemp(prefix="localstripe-", suffix=".log")[1])
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalStripe:
        with self._log.open("w") as log:
            self._process = subprocess.Popen(
                [*LAUNCHER, "--rate-limit", str(self.rate_limit)],
                cwd=PROJECT_ROOT,
                env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)},
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"localstripe did not start: {self._log.read_text()[-2000:]}")
        self.port = int(line)
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                httpx.get(f"{self.url}/_launcher/stats", timeout=1.0).raise_for_status()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        f"localstripe does not answer: {self._log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        self._log.unlink(missing_ok=True)

    def __enter__(self) -> LocalStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        key: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = dict(headers or {})
        if key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        async with httpx.AsyncClient(base_url=self.url, timeout=10.0) as client:
            response = await client.request(method, path, headers=headers, **kwargs)
        return response

    async def payment_method(self, card_number: str) -> str:
        """A card PaymentMethod (`pm_…`), as the buyer's browser makes one with Stripe.js."""
        response = await self._call(
            "POST",
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": card_number,
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
        response.raise_for_status()
        payment_method: str = response.json()["id"]
        return payment_method

    async def authenticate(self, payment_intent: str, client_secret: str, success: bool) -> int:
        """The buyer passes (or fails) the issuer's 3-D Secure challenge of a PaymentIntent
        waiting for it, as Stripe.js does with the client secret. Returns the HTTP status:
        402 when the card then declines the charge."""
        response = await self._call(
            "POST",
            f"/v1/payment_intents/{payment_intent}/_authenticate",
            key=False,
            data={
                "key": PUBLISHABLE_KEY,
                "client_secret": client_secret,
                "success": "true" if success else "false",
            },
        )
        status: int = response.status_code
        return status

    async def register_webhook(
        self, webhook_id: str, url: str, secret: str, events: list[str] | None = None
    ) -> None:
        """Have localstripe send its events to `url`, signed with `secret` as Stripe signs
        them for an endpoint registered in its dashboard."""
        payload: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            payload["events"] = events
        response = await self._call(
            "POST", f"/_config/webhooks/{webhook_id}", key=False, json=payload
        )
        response.raise_for_status()

    async def post(
        self, path: str, form: dict[str, str], idempotency_key: str | None = None
    ) -> httpx.Response:
        """A POST with the secret key, as the service's Stripe library sends one."""
        headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        response: httpx.Response = await self._call("POST", path, data=form, headers=headers)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        """An object (or list) as Stripe's API gives it to the secret key."""
        response = await self._call("GET", path, params=params)
        response.raise_for_status()
        return response.json()

    async def payment_intents(self, transaction_id: object) -> list[dict[str, Any]]:
        """Every PaymentIntent made for a charge attempt (by its metadata), oldest first."""
        found: list[dict[str, Any]] = []
        page: dict[str, Any] = {"has_more": True, "data": []}
        while page["has_more"]:
            after = {"starting_after": page["data"][-1]["id"]} if page["data"] else {}
            page = await self.get("/v1/payment_intents", limit=100, **after)
            found += [
                intent
                for intent in page["data"]
                if intent["metadata"].get("transaction_id") == str(transaction_id)
            ]
        return found

    async def creates(
        self, transaction_id: object, path: str = "/v1/payment_intents"
    ) -> list[dict[str, Any]]:
        """The POSTs to `path` (PaymentIntent creates; "/v1/refunds": refund creates) the
        front door saw for a charge attempt (by their `metadata[transaction_id]`), oldest
        first."""
        return [
            request
            for request in await self.requests()
            if (request["method"], request["path"]) == ("POST", path)
            and parse_qs(request["body"]).get("metadata[transaction_id]") == [str(transaction_id)]
        ]

    async def requests(self) -> list[dict[str, Any]]:
        """Every API request the front door saw, oldest first."""
        return await self.get("/_launcher/requests")

    async def stats(self) -> dict[str, int]:
        """{"requests": API requests seen, "answered_429": of them turned away,
        "replayed": answered again under their Idempotency-Key}."""
        return await self.get("/_launcher/stats")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate-limit", type=int, default=0)
    launch(parser.parse_args().rate_limit)
