"""A client generated from the running service's OpenAPI document pays, reads and refunds.

What a user of the API does first: openapi-python-client on /schema/openapi.json. Every
operation must come out whole (no answer dropped for a schema the generator cannot read), and
the generated models must carry the service's real answers.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.service import RunningService

PACKAGE = "generated_payments_client"


@pytest.fixture
def import_path(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


async def generate_client(service: RunningService, directory: Path) -> ModuleType:
    document = directory / "openapi.json"
    document.write_bytes((await service.client.get("/schema/openapi.json")).content)
    # The generator formats its output with ruff: the one of this environment.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    process = await asyncio.create_subprocess_exec(
        *(Path(sys.executable).parent / "openapi-python-client", "generate"),
        *("--path", str(document), "--output-path", str(directory / PACKAGE), "--meta", "none"),
        env={**os.environ, "PATH": path},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode(errors="replace")
    assert process.returncode == 0, output
    # A warning means a part of the document was left out of the client.
    assert "warning" not in output.lower(), output
    return importlib.import_module(PACKAGE)


@pytest.mark.slow
async def test_a_generated_client_pays_reads_and_refunds_an_order(
    service: RunningService, import_path: Path
) -> None:
    client_package = await generate_client(service, import_path)
    models = importlib.import_module(f"{PACKAGE}.models")
    modules = {
        name: importlib.import_module(f"{PACKAGE}.api.payments.{name}")
        for name in ("create_payment", "get_payment", "get_payment_by_order", "refund_payment")
    }

    async with client_package.Client(base_url=service.url) as client:
        created = await modules["create_payment"].asyncio_detailed(
            client=client, body=models.CreatePaymentRequest(order_id=4242, amount=89800)
        )
        payment = created.parsed
        assert created.status_code == 201 and isinstance(payment, models.Payment), created
        assert payment.status == models.PaymentStatus.COMPLETED and payment.amount == 89800

        by_id = await modules["get_payment"].asyncio(client=client, payment_id=str(payment.id))
        by_order = await modules["get_payment_by_order"].asyncio(client=client, order_id=4242)
        assert isinstance(by_id, models.PaymentView) and by_id.id == payment.id, by_id
        assert isinstance(by_order, models.PaymentView) and by_order.id == payment.id, by_order

        refunded = await modules["refund_payment"].asyncio(
            client=client,
            body=models.RefundRequest(payment_id=payment.id, reason="Order cancelled"),
        )
        assert isinstance(refunded, models.Refund), refunded
        assert refunded.payment_id == payment.id and refunded.amount == 89800

        missing = await modules["get_payment_by_order"].asyncio(client=client, order_id=4243)
        assert isinstance(missing, models.Problem) and missing.status == 404, missing
        after = await modules["get_payment"].asyncio(client=client, payment_id=str(payment.id))
        assert isinstance(after, models.PaymentView)
        assert after.status == models.PaymentStatus.REFUNDED
        assert [refund.id for refund in after.refunds] == [refunded.id]
