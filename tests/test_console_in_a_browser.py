"""The operator console in a real headless Chromium (no route beyond loopback) against the
running service, a real PostgreSQL and the Order Service stub: signing in with each kind
of token, finding a payment, its page, a refund through its confirmation, redelivering a
dead event, what a read-only token sees and may not do, escaping, and that nothing is
loaded from outside loopback. One browser for the module; several checks per page load."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from service.api.console.access import COOKIE
from tests.support.browser import LOOPBACK, chromium, requested_hosts
from tests.support.console import FULL, READ_ONLY, TOKENS
from tests.support.order_stub import Answer, OrderServiceStub, ReceivedWebhook
from tests.support.relay_helpers import FAST_OUTBOX, wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

pytestmark = pytest.mark.slow  # a browser start costs seconds

checks: Any = load_test_queries()
SCRIPT = "<script>document.title='owned'</script>"
BROKEN_ORDER = 13  # the Order Service fails its webhooks until told otherwise
WAIT = 30


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        # Finding an element waits for it to appear, within a generous deadline.
        driver.implicitly_wait(WAIT)
        yield driver


@pytest.fixture
async def console(
    database_url: str, order_stub: OrderServiceStub, browser: Any
) -> AsyncIterator[RunningService]:
    """The service with both kinds of token; a browser with no cookie and an empty log."""
    settings = make_settings(
        database_url,
        order_stub.url,
        auth=TOKENS,
        outbox={**FAST_OUTBOX, "retry_schedule_seconds": (0.05, 0.05)},
    )
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    await asyncio.to_thread(requested_hosts, browser)
    async with serve(settings) as running:
        yield running


async def pay(service: RunningService, order_id: int, **extra: Any) -> int:
    answer = await service.client.post(
        "/api/v1/payments/",
        json={"order_id": order_id, "amount": 1500, **extra},
        headers={"Authorization": f"Bearer {FULL}"},
    )
    assert answer.status_code == 201, answer.text
    payment_id: int = answer.json()["id"]
    return payment_id


def follow(driver: Any, element: Any) -> None:
    """Click what leads to another page, and wait until that page is the one shown.

    The page left is marked, and the wait is for a loaded document without the mark:
    asking an element of the old page whether it is stale, chromedriver sometimes
    answers with an inspector error of its own instead of "stale" while the new page
    replaces it."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("document.documentElement.dataset.left = 'yes'")
    element.click()
    WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete'"
            " && document.documentElement.dataset.left === undefined"
        )
    )


def sign_in(driver: Any, base: str, token: str) -> str:
    """Open the console, sign in with `token`; who the console says is signed in."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/console/")
    driver.find_element(By.ID, "token").send_keys(token)
    follow(driver, driver.find_element(By.ID, "sign-in"))
    return str(driver.find_element(By.ID, "who").text)


def texts(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [str(element.text) for element in driver.find_elements(By.CSS_SELECTOR, selector)]


def full_token_session(driver: Any, base: str, dead_event: str) -> dict[str, Any]:
    """Everything a full token does, in order; what each page showed."""
    from selenium.webdriver.common.by import By

    seen: dict[str, Any] = {"who": sign_in(driver, base, FULL)}
    seen["overview"] = texts(driver, "#payments-chart, #lag-chart")

    # Find a payment by its order id, then by its metadata.
    follow(driver, driver.find_element(By.LINK_TEXT, "Payments"))
    driver.find_element(By.ID, "order-id").send_keys("4711")
    follow(driver, driver.find_element(By.ID, "find-order-button"))
    seen["payment_url"] = driver.current_url
    seen["status"] = driver.find_element(By.ID, "status").text
    seen["attempts"] = texts(driver, "#attempts tbody tr")
    seen["events"] = texts(driver, "#events tbody tr")
    seen["note"] = driver.find_element(By.CSS_SELECTOR, '[data-metadata="note"]').text
    seen["title"] = driver.title
    driver.get(f"{base}/console/payments")
    driver.find_element(By.ID, "meta-key").send_keys("customer")
    driver.find_element(By.ID, "meta-value").send_keys("c-4711")
    follow(driver, driver.find_element(By.ID, "filter-button"))
    seen["by_metadata"] = texts(driver, "#payments tbody tr td:nth-child(2)")

    # Refund, through its confirmation step.
    driver.get(seen["payment_url"])
    follow(driver, driver.find_element(By.ID, "refund"))
    driver.find_element(By.ID, "reason").send_keys("Order cancelled <b>by phone</b>")
    follow(driver, driver.find_element(By.ID, "review"))
    seen["confirm"] = driver.find_element(By.ID, "confirm-text").text
    follow(driver, driver.find_element(By.ID, "confirm"))
    seen["refund_outcome"] = driver.find_element(By.ID, "outcome").text
    follow(driver, driver.find_element(By.ID, "to-payment"))
    seen["status_after"] = driver.find_element(By.ID, "status").text
    seen["refunds"] = texts(driver, "#refunds tbody tr")
    seen["events_after"] = texts(driver, "#events tbody tr td:nth-child(2)")

    # Redeliver the dead event.
    driver.get(f"{base}/console/events")
    row = driver.find_element(By.CSS_SELECTOR, f'#stuck tr[data-event="{dead_event}"]')
    seen["dead_row"] = row.get_attribute("data-state")
    follow(driver, row.find_element(By.CSS_SELECTOR, "button.redeliver"))
    seen["redeliver_outcome"] = driver.find_element(By.ID, "outcome").text
    return seen


def event_state(driver: Any, url: str, event: str) -> str:
    from selenium.webdriver.common.by import By

    driver.get(url)
    row = driver.find_element(By.CSS_SELECTOR, f'#events tr[data-event="{event}"]')
    return str(row.get_attribute("data-state"))


async def test_a_full_token_finds_refunds_and_redelivers(
    console: RunningService, order_stub: OrderServiceStub, db: asyncpg.Connection, browser: Any
) -> None:
    order_stub.answer = lambda call: Answer(500 if call.order_id == BROKEN_ORDER else 200)
    await pay(console, 4711, metadata={"customer": "c-4711", "note": SCRIPT})
    await pay(console, 4712, metadata={"customer": "c-other"})
    broken = await pay(console, BROKEN_ORDER)
    [dead] = [row async for row in checks.outbox_events_of_payment(db, payment_id=broken)]

    async def is_dead() -> bool:
        rows = [row async for row in checks.outbox_events_of_payment(db, payment_id=broken)]
        return rows[0]["dead_at"] is not None

    await wait_until(is_dead, WAIT, "the broken order's webhook dead")
    order_stub.answer = lambda call: Answer(200)

    seen = await asyncio.to_thread(full_token_session, browser, console.url, str(dead["id"]))

    assert seen["who"].startswith("full token")
    # The overview's two charts (service/api/console/templates/overview.html), each drawn.
    assert len(seen["overview"]) == 2
    assert all(chart for chart in seen["overview"])
    assert seen["status"] == "COMPLETED"
    assert len(seen["attempts"]) == 1 and "COMPLETED" in seen["attempts"][0]
    assert len(seen["events"]) == 1 and "payment.completed" in seen["events"][0]
    assert seen["note"] == SCRIPT  # shown as text, never run
    assert "owned" not in seen["title"]
    assert seen["by_metadata"] == ["4711"]
    assert "Order cancelled <b>by phone</b>" in seen["confirm"]
    assert seen["refund_outcome"].startswith("201")
    assert seen["status_after"] == "REFUNDED"
    assert len(seen["refunds"]) == 1 and "Order cancelled <b>by phone</b>" in seen["refunds"][0]
    assert seen["events_after"] == ["payment.refunded", "payment.completed"]
    assert seen["dead_row"] == "dead"
    assert seen["redeliver_outcome"].startswith("202")

    def delivered(call: ReceivedWebhook) -> bool:
        return call.order_id == BROKEN_ORDER

    async def redelivered() -> bool:
        return any(delivered(call) for call in order_stub.accepted)

    await wait_until(redelivered, WAIT, "the dead event delivered")
    page = f"{console.url}/console/payments/{broken}"
    assert await asyncio.to_thread(event_state, browser, page, str(dead["id"])) == "delivered"
    assert await asyncio.to_thread(requested_hosts, browser) <= LOOPBACK


def read_only_session(driver: Any, base: str, payment_id: int) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    seen: dict[str, Any] = {"who": sign_in(driver, base, READ_ONLY)}
    actions = []
    # What is absent is looked for once the page has loaded (get waits for that), not
    # waited for.
    driver.implicitly_wait(0)
    try:
        for path in (f"/console/payments/{payment_id}", "/console/events", "/console/"):
            driver.get(f"{base}{path}")
            actions += driver.find_elements(By.CSS_SELECTOR, ".action, button.redeliver, #replay")
    finally:
        driver.implicitly_wait(WAIT)
    seen["actions"] = len(actions)
    driver.get(f"{base}/console/payments/{payment_id}")
    seen["status"] = driver.find_element(By.ID, "status").text
    seen["csrf"] = driver.find_element(By.NAME, "csrf_token").get_attribute("value")
    seen["cookie"] = driver.get_cookie(COOKIE)
    return seen


def sign_out(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    follow(driver, driver.find_element(By.ID, "sign-out"))
    return str(driver.find_element(By.TAG_NAME, "h1").text)


async def test_a_read_only_token_sees_everything_acts_on_nothing(
    console: RunningService, db: asyncpg.Connection, browser: Any
) -> None:
    payment_id = await pay(console, 21)

    seen = await asyncio.to_thread(read_only_session, browser, console.url, payment_id)

    assert seen["who"].startswith("read-only token")
    assert seen["status"] == "COMPLETED"
    assert seen["actions"] == 0
    cookie = seen["cookie"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    # A POST forged with the session's own cookie and CSRF token is still refused.
    async with httpx.AsyncClient(base_url=console.url) as forger:
        forger.cookies.set(COOKIE, cookie["value"], path="/console")
        forged = await forger.post(
            f"/console/payments/{payment_id}/refund",
            data={"csrf_token": seen["csrf"], "idempotency_key": "forged-1", "reason": "x"},
        )
    assert forged.status_code == 403
    assert await checks.payment_status(db, payment_id=payment_id) == "COMPLETED"
    assert await asyncio.to_thread(sign_out, browser) == "Sign in"
    assert await asyncio.to_thread(requested_hosts, browser) <= LOOPBACK
