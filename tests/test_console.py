"""The operator console over plain HTTP: who may see and do what (sessions, CSRF, expiry,
read-only tokens), a form sent twice, the overview's figures, the replay job, bad input.
tests/test_console_in_a_browser.py drives the same pages in a real browser."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.api.console.access import COOKIE, Visitor, encode, fingerprint
from service.db.sql import load_queries
from service.domain.rules import PaymentStatus
from service.settings import Settings
from tests.support.console import FULL, READ_ONLY, TOKENS, csrf_of, figure, forms, sign_in
from tests.support.order_stub import OrderServiceStub
from tests.support.payments import insert_processing, payment_in, settle, start_refund
from tests.support.relay_helpers import FAST_OUTBOX, wait_until
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings
from tests.support.sql import load_test_queries

checks: Any = load_test_queries()
CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
DECLINED_AMOUNT = 4000


@pytest.fixture
async def guarded(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    """The service with a full and a read-only token configured."""
    settings = make_settings(
        database_url,
        order_stub.url,
        auth=TOKENS,
        gateway={"decline_amounts": [DECLINED_AMOUNT]},
        console={"session_hours": 2.0},
    )
    async with serve(settings) as running:
        yield running


def client_of(service: RunningService) -> httpx.AsyncClient:
    """Another browser: a client with cookies of its own."""
    return httpx.AsyncClient(base_url=service.url, timeout=30)


async def paid(service: RunningService, order_id: int, amount: int = 1500, **extra: Any) -> int:
    answer = await service.client.post(
        "/api/v1/payments/",
        json={"order_id": order_id, "amount": amount, **extra},
        headers={"Authorization": f"Bearer {FULL}"},
    )
    assert answer.status_code in (201, 402), answer.text
    payment_id: int = answer.json().get("id") or answer.json()["payment_id"]
    return payment_id


async def status_of(db: asyncpg.Connection, payment_id: int) -> str:
    status: str = await checks.payment_status(db, payment_id=payment_id)
    return status


def set_cookie(answer: httpx.Response) -> str:
    return answer.headers["set-cookie"]


async def test_an_open_console_answers_its_pages_with_a_policy_of_self_and_a_session(
    service: RunningService,
) -> None:
    await paid(service, 1)
    client = client_of(service)
    async with client:
        overview = await client.get("/console/")
        pages = [
            overview,
            *[
                await client.get(path)
                for path in ("/console/payments", "/console/payments/1", "/console/events")
            ],
        ]
        stylesheet = await client.get("/console/static/console.css")

    assert [page.status_code for page in pages] == [200, 200, 200, 200]
    for page in pages:
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        # Nothing the pages load or link to is elsewhere.
        assert not re.search(r'(src|href|action)="(https?:)?//', page.text)
    cookie = set_cookie(overview)
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/console", "Max-Age=28800"):
        assert attribute in cookie
    assert stylesheet.status_code == 200 and stylesheet.headers["content-type"].startswith(
        "text/css"
    )
    # No tokens: the console is open as the API is, actions included.
    assert figure(overview.text, "hour-count-COMPLETED") == "1"
    assert 'id="refund"' in pages[2].text


async def test_with_tokens_the_console_asks_for_one_and_signs_in_with_either_kind(
    guarded: RunningService,
) -> None:
    await paid(guarded, 1)
    for token, kind in ((FULL, "full"), (READ_ONLY, "read-only")):
        async with client_of(guarded) as client:
            asked = await client.get("/console/payments/1")
            assert asked.status_code == 200 and 'action="/console/sign-in"' in asked.text
            assert "data-field" not in asked.text  # nothing of the payment before signing in
            wrong = await client.post(
                "/console/sign-in",
                data={"csrf_token": csrf_of(asked.text), "token": "not-a-token"},
            )
            assert wrong.status_code == 401 and "not a valid token" in wrong.text

            signed_in = await sign_in(client, token)
            assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/"
            assert "Max-Age=7200" in set_cookie(signed_in)  # [console] session_hours = 2
            payment = await client.get("/console/payments/1")
            assert payment.status_code == 200 and 'data-field="order_id">1<' in payment.text
            assert f"{kind} token {fingerprint(token.encode())[:12]}" in payment.text

            out = await client.post("/console/sign-out", data={"csrf_token": csrf_of(payment.text)})
            assert out.status_code == 303
            assert 'action="/console/sign-in"' in (await client.get("/console/payments/1")).text


async def test_a_sign_in_without_the_pages_csrf_token_is_refused(guarded: RunningService) -> None:
    async with client_of(guarded) as client:
        await client.get("/console/")
        refused = await client.post("/console/sign-in", data={"token": FULL})
        assert refused.status_code == 403
        assert 'action="/console/sign-in"' in (await client.get("/console/")).text


async def test_an_action_without_its_sessions_csrf_token_is_refused_and_changes_nothing(
    guarded: RunningService, db: asyncpg.Connection
) -> None:
    payment_id = await paid(guarded, 1)
    action = f"/console/payments/{payment_id}/refund"
    async with client_of(guarded) as client, client_of(guarded) as other:
        await sign_in(client, FULL)
        await sign_in(other, FULL)
        form = forms((await client.get(f"{action}?reason=changed+mind")).text)[action]
        others = forms((await other.get(f"{action}?reason=changed+mind")).text)[action]
        assert form["csrf_token"] != others["csrf_token"]

        missing = {k: v for k, v in form.items() if k != "csrf_token"}
        wrong = {**form, "csrf_token": form["csrf_token"][:-2] + "xx"}
        another_sessions = {**form, "csrf_token": others["csrf_token"]}
        for data in (missing, wrong, another_sessions):
            refused = await client.post(action, data=data)
            assert refused.status_code == 403, data
            assert "CSRF" in refused.text
            assert await status_of(db, payment_id) == "COMPLETED"

        done = await client.post(action, data=form)
    assert done.status_code == 201, done.text
    assert await status_of(db, payment_id) == "REFUNDED"


async def test_a_read_only_session_sees_no_action_and_its_forged_post_is_refused(
    guarded: RunningService, db: asyncpg.Connection
) -> None:
    payment_id = await paid(guarded, 1)
    async with client_of(guarded) as client:
        await sign_in(client, READ_ONLY)
        page = (await client.get(f"/console/payments/{payment_id}")).text
        events = (await client.get("/console/events")).text
        assert 'class="action' not in page + events
        assert set(forms(page)) == {"/console/sign-out"}
        forged = {"csrf_token": csrf_of(page), "idempotency_key": "k-1", "reason": "forged"}
        for action in (f"/console/payments/{payment_id}/refund", "/console/events/replay"):
            refused = await client.post(
                action, data={**forged, "dead_since": "2000-01-01T00:00:00Z"}
            )
            assert refused.status_code == 403 and "read-only" in refused.text
    assert await status_of(db, payment_id) == "COMPLETED"
    assert await checks.count_outbox_events(db) == 1


async def test_an_expired_session_is_signed_out_and_can_no_longer_act(
    guarded: RunningService, db: asyncpg.Connection
) -> None:
    payment_id = await paid(guarded, 1)
    auth = guarded.app.state.settings.auth
    ended = Visitor("full", fingerprint(FULL.encode()), "nonce-1", int(time.time()) - 1)
    async with client_of(guarded) as client:
        client.cookies.set(COOKIE, encode(ended, auth), path="/console")
        page = await client.get(f"/console/payments/{payment_id}")
        assert 'action="/console/sign-in"' in page.text
        # Its CSRF token was right while it lasted: the form is refused all the same.
        client.cookies.set(COOKIE, encode(ended, auth), path="/console")
        from service.api.console.access import csrf_token

        refused = await client.post(
            f"/console/payments/{payment_id}/refund",
            data={"csrf_token": csrf_token(ended, auth), "idempotency_key": "k", "reason": "r"},
        )
    assert refused.status_code == 403
    assert await status_of(db, payment_id) == "COMPLETED"


async def asks_to_sign_in(settings: Settings, session: str) -> bool:
    """Whether a service with these settings answers a browser with this session cookie
    with the sign-in page."""
    async with serve(settings) as running, client_of(running) as client:
        client.cookies.set(COOKIE, session, path="/console")
        return 'action="/console/sign-in"' in (await client.get("/console/")).text


async def test_changing_the_tokens_ends_every_session_and_a_revoked_token_its_own(
    database_url: str, order_stub: OrderServiceStub
) -> None:
    async with (
        serve(make_settings(database_url, order_stub.url, auth=TOKENS)) as first,
        client_of(first) as client,
    ):
        await sign_in(client, FULL)
        session = client.cookies[COOKIE]
    assert not await asks_to_sign_in(
        make_settings(database_url, order_stub.url, auth=TOKENS), session
    )
    # Signed under other tokens (one added):
    rotated = {"tokens": [FULL, "full-token-2"], "read_only_tokens": [READ_ONLY]}
    assert await asks_to_sign_in(make_settings(database_url, order_stub.url, auth=rotated), session)
    # Signed right, but its token is no longer configured:
    revoked = {"tokens": ["full-token-2"], "read_only_tokens": [READ_ONLY]}
    settings = make_settings(database_url, order_stub.url, auth=revoked)
    ended = Visitor("full", fingerprint(FULL.encode()), "n", int(time.time()) + 3600)
    assert await asks_to_sign_in(settings, encode(ended, settings.auth))


async def test_a_form_sent_twice_acts_once_and_shows_its_first_outcome(
    guarded: RunningService,
) -> None:
    payment_id = await paid(guarded, 1, DECLINED_AMOUNT)
    action = f"/console/payments/{payment_id}/retry"
    async with client_of(guarded) as client:
        await sign_in(client, FULL)
        form = forms((await client.get(f"/console/payments/{payment_id}")).text)[action]
        first = await client.post(action, data=form)
        again = await client.post(action, data=form)
    # Declined again (the same amount), as the API's retry answers: 402 and why.
    assert first.status_code == again.status_code == 402
    assert "declined" in first.text and "card_declined" in first.text
    assert 'id="replayed"' not in first.text and 'id="replayed"' in again.text
    view = (
        await guarded.client.get(
            f"/api/v1/payments/{payment_id}", headers={"Authorization": f"Bearer {FULL}"}
        )
    ).json()
    assert len(view["attempts"]) == 2  # the create, and one retry


async def test_the_payment_page_shows_every_field_of_the_resource_and_escapes_metadata(
    service: RunningService,
) -> None:
    script = "<script>document.title='owned'</script>"
    payment_id = await paid(service, 7, metadata={"note": script})
    page = (await service.client.get(f"/console/payments/{payment_id}")).text
    resource = (await service.client.get(f"/api/v1/payments/{payment_id}")).json()

    shown = set(re.findall(r'data-field="([^"]+)"', page))
    # A field the resource gains (a gateway's reference, say) shows with no console change.
    assert set(resource) - {"refunds", "attempts", "metadata"} <= shown
    assert "&lt;script&gt;document.title=&#39;owned&#39;&lt;/script&gt;" in page
    assert script not in page


async def test_the_payment_page_keeps_the_buyers_client_secret_to_the_buyer(
    service: RunningService, db: asyncpg.Connection
) -> None:
    secret = "pi_3DS_secret_for-the-buyer-only"
    created = await insert_processing(db, 1)
    await settle(
        db,
        created["id"],
        created["transaction_id"],
        PaymentStatus.PENDING,
        next_action={"type": "authenticate", "client_secret": secret},
    )
    page = (await service.client.get(f"/console/payments/{created['id']}")).text
    resource = (await service.client.get(f"/api/v1/payments/{created['id']}")).json()

    assert resource["next_action"]["client_secret"] == secret  # the API gives it
    assert secret not in page
    shown = re.search(r'data-field="next_action">([^<]*)<', page)
    assert shown is not None and shown[1].startswith("authenticate")


async def test_a_refund_pending_at_the_gateway_takes_the_refund_button_away(
    service: RunningService, db: asyncpg.Connection
) -> None:
    payment_id = await paid(service, 1)
    before = (await service.client.get(f"/console/payments/{payment_id}")).text
    refund_id = await start_refund(db, payment_id)
    during = (await service.client.get(f"/console/payments/{payment_id}")).text

    assert 'id="refund"' in before and 'id="refund-in-progress"' not in before
    assert 'id="refund"' not in during
    assert f"Refund {refund_id} is pending at the gateway" in during


async def test_the_overview_counts_payments_by_status_and_the_webhooks(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    for order_id, status in enumerate(
        [
            PaymentStatus.COMPLETED,
            PaymentStatus.COMPLETED,
            PaymentStatus.FAILED,
            PaymentStatus.PENDING,
            PaymentStatus.REFUNDED,
            PaymentStatus.PROCESSING,
        ],
        start=1,
    ):
        await payment_in(db, order_id, status)
    flagged = await checks.payment_id_of_order(db, order_id=6)
    assert await load_queries().flag_for_manual_review(
        db, payment_id=flagged, older_than_seconds=-1
    )
    [dead, *_] = [row["id"] async for row in checks.all_outbox_events(db)]
    await checks.mark_event_dead(db, event_id=dead, attempts=8, error="HTTP 500")
    # No relay here: the events stay as they are.
    settings = make_settings(database_url, order_stub.url, outbox={"relay_in_process": False})
    async with serve(settings) as running:
        page = (await running.client.get("/console/")).text

    expected = {
        "COMPLETED": (2, "2,000"),
        "FAILED": (1, "1,000"),
        "PENDING": (1, "1,000"),
        "REFUNDED": (1, "1,000"),
        "PROCESSING": (1, "1,000"),
    }
    for status, (count, yen) in expected.items():
        assert (
            figure(page, f"hour-count-{status}")
            == figure(page, f"day-count-{status}")
            == str(count)
        )
        assert figure(page, f"hour-amount-{status}") == figure(page, f"day-amount-{status}") == yen
    # completed x2, failed, refunded (completed then refunded): 5 events, one dead.
    assert figure(page, "waiting-for-buyers") == "1"
    assert figure(page, "manual-review") == "1"
    assert figure(page, "outbox-dead") == "1"
    assert figure(page, "outbox-pending") == "4"
    assert figure(page, "relay-state") == "off"
    assert page.count('<rect class="bar') == 5  # one bar per status this minute


async def test_a_replay_job_redelivers_the_dead_events_since_a_time_and_shows_its_progress(
    database_url: str, order_stub: OrderServiceStub, db: asyncpg.Connection
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    for order_id in (1, 2):
        await payment_in(db, order_id, PaymentStatus.COMPLETED)
    events = [row["id"] async for row in checks.all_outbox_events(db)]
    for event in events:
        await checks.mark_event_dead(db, event_id=event, attempts=8, error="HTTP 500")
    settings = make_settings(database_url, order_stub.url, outbox=FAST_OUTBOX)
    async with serve(settings) as running:
        page = (await running.client.get("/console/events")).text
        assert figure(page, "outbox-dead") == "2"
        form = forms(page)["/console/events/replay"]
        started = await running.client.post(
            "/console/events/replay", data={**form, "dead_since": since.isoformat()}
        )
        assert started.status_code == 202, started.text
        job = re.search(r'href="(/console/jobs/\d+)"', started.text)
        assert job is not None

        async def finished() -> bool:
            return 'id="finished"' in (await running.client.get(job[1])).text

        await wait_until(finished, what="the job's events delivered")
        progress = (await running.client.get(job[1])).text
    assert figure(progress, "job-events") == figure(progress, "job-delivered") == "2"
    assert figure(progress, "job-pending") == figure(progress, "job-dead") == "0"
    assert sorted(str(call.webhook_id) for call in order_stub.accepted) == sorted(map(str, events))


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("created_gte=yesterday", 400, "created from must be an RFC 3339 timestamp"),
        ("meta_key=no%20spaces&meta_value=x", 400, "metadata key"),
        ("order_id=4x", 400, "order id must be a whole number"),
        ("status=LOST", 400, "status must be one of"),
        ("order_id=99", 404, "order 99 has no payment"),
    ],
)
async def test_bad_input_is_a_readable_4xx_page(
    service: RunningService, query: str, status: int, says: str
) -> None:
    answer = await service.client.get(f"/console/payments?{query}")
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert says in answer.text
