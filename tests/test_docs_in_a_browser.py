"""The interactive docs work with no route beyond loopback: a real headless Chromium
(Debian's chromium and chromedriver) loads /schema/swagger, the operations render from
assets the service serves itself, and "Try it out" creates a payment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.browser import LOOPBACK, chromium, requested_hosts
from tests.support.service import RunningService

pytestmark = pytest.mark.slow  # a browser start costs seconds


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


def try_it_out(driver: object, docs_url: str) -> str:
    """Open the docs, expand createPayment, "Try it out" with a body, "Execute": its status.

    Blocking (Selenium): run off the event loop, which serves the service under test.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)  # type: ignore[arg-type]
    driver.get(docs_url)  # type: ignore[attr-defined]
    operation = wait.until(
        ready.presence_of_element_located((By.ID, "operations-payments-createPayment"))
    )
    assert driver.find_elements(By.ID, "operations-payments-refundPayment")  # type: ignore[attr-defined]
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "button.try-out__btn"))).click()
    body = wait.until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "textarea.body-param__text"))
    )
    body.clear()
    body.send_keys('{"order_id": 4242, "amount": 1500, "currency": "JPY"}')
    operation.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait.until(
        ready.presence_of_element_located(
            (By.CSS_SELECTOR, ".live-responses-table tbody td.response-col_status")
        )
    )
    return str(status.text)


async def test_swagger_ui_renders_and_try_it_out_creates_a_payment(
    service: RunningService, browser: object
) -> None:
    status = await asyncio.to_thread(try_it_out, browser, f"{service.url}/schema/swagger")

    assert status.strip().startswith("201"), status
    paid = await service.client.get("/api/v1/payments/order/4242")
    assert paid.status_code == 200 and paid.json()["status"] == "COMPLETED"
    assert await asyncio.to_thread(requested_hosts, browser) <= LOOPBACK
