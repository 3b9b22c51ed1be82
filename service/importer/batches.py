"""A batch of rows in one call (POST /api/v1/payments/batch), reported row by row exactly
as the one-by-one calls report them."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from service.importer.client import (
    PaymentsClient,
    Sends,
    _cut,
    _gave_up,
    _int,
    _json,
)
from service.importer.outcomes import Outcome, Result
from service.importer.retry import RetryPolicy, is_retryable
from service.importer.rows import Payment

BATCH_PATH = "/api/v1/payments/batch"
BATCH_KEY_PREFIX = "import-batch-"


class BatchClient(PaymentsClient):
    def __init__(self, http: httpx.AsyncClient, policy: RetryPolicy | None = None) -> None:
        super().__init__(http, policy)
        self._url = httpx.URL(str(http.base_url).rstrip("/") + BATCH_PATH)

    async def pay_batch(self, payments: Sequence[Payment]) -> list[Result]:
        """The rows in one batch call; a result per row, in order, as `pay` would report it.

        The Idempotency-Key is derived from the batch's body, so a rerun of the file (which
        makes the same batches) replays the stored answer instead of paying again.
        """
        body = batch_body(payments)
        key = BATCH_KEY_PREFIX + hashlib.sha256(body).hexdigest()[:32]
        headers = {"content-type": "application/json", "idempotency-key": key}
        sent = await self._send("POST", self._url, content=body, headers=headers)
        response, n = sent.response, sent.count
        if response is None:
            return [Result(Outcome.FAILED, detail=_gave_up(sent), sends=n) for _ in payments]
        if response.status_code != 200:
            status, problem = response.status_code, _json(response)
            outcome = Outcome.FAILED if is_retryable(status) else Outcome.REJECTED
            detail = str(problem.get("detail", ""))
            detail = _gave_up(sent, detail) if outcome is Outcome.FAILED else _cut(detail)
            problem_type = str(problem.get("type", ""))
            return [Result(outcome, None, "", status, problem_type, detail, n) for _ in payments]
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        items = _json(response).get("results")
        if not isinstance(items, list) or len(items) != len(payments):
            detail = f"the batch answer does not have one result per row: {_cut(response.text)}"
            return [Result(Outcome.FAILED, detail=detail, sends=n) for _ in payments]
        return list(
            await asyncio.gather(
                *(
                    self._item(payment, _object(item), replayed, sent)
                    for payment, item in zip(payments, items, strict=True)
                )
            )
        )

    async def _item(
        self, payment: Payment, item: dict[str, Any], replayed: bool, sent: Sends
    ) -> Result:
        status = _int(item.get("status")) or 0
        problem = _object(item.get("problem"))
        if status >= 500:
            # The payment exists, PROCESSING when this was answered: report what it is now.
            problem_type, detail = str(problem.get("type", "")), str(problem.get("detail", ""))
            lost = Sends(sent.response, sent.count, sent.error, True)
            now = await self._existing(payment, status, problem_type, lost)
            return replace(now, detail=_cut(f"{detail} (now {now.payment_status or 'unknown'})"))
        body = _object(item.get("payment")) if status == 201 else problem
        return await self._answered(payment, status, body, replayed, sent)


def batch_body(payments: Sequence[Payment]) -> bytes:
    """The batch's request body: always the same bytes for the same rows (idempotent replays)."""
    return b'{"payments":[' + b",".join(payment.body() for payment in payments) + b"]}"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
