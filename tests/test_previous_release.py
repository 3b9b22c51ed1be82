"""Expand, then contract: a migration never breaks the statements of the release before it.

A rolling deploy migrates the database while instances of the previous release still
serve. tests/sql/previous_release/ holds that release's sql/, unmodified, with a marker
(release.toml) naming the first migration it predates and the migrations of the release
under way. Its core calls must run on a database migrated to the newest schema; a
migration of a later release needs a newer snapshot first.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiosql
import asyncpg
import pytest

from service.db.migrate import migration_files
from service.db.sql import load_queries
from tests.support.paths import PROJECT_ROOT
from tests.support.relay_helpers import wait_until
from tests.support.sql import TEST_SQL_DIR, load_test_queries

SNAPSHOT = TEST_SQL_DIR / "previous_release"
MARKER = SNAPSHOT / "release.toml"
checks: Any = load_test_queries()

NO_KEY = dict.fromkeys(("key_caller", "key_endpoint", "key_name", "key_token"))
CREATE = "POST /api/v1/payments"


def marker() -> dict[str, Any]:
    return tomllib.loads(MARKER.read_text(encoding="utf-8"))


def previous_release() -> Any:
    """The previous release's statements, loaded as that release loads sql/."""
    return aiosql.from_path(SNAPSHOT, "asyncpg")


async def rows(stream: Any) -> list[asyncpg.Record]:
    return [row async for row in stream]


async def test_the_previous_release_runs_its_core_calls_on_the_newest_schema(
    db: asyncpg.Connection,
) -> None:
    old = previous_release()

    # A keyed create: claim the key, insert PROCESSING (recorded on the key), settle.
    token = uuid4()
    claim = await old.claim_idempotency_key(
        db,
        caller="",
        endpoint=CREATE,
        key="rolling-deploy",
        request_hash=b"\x01" * 32,
        token=token,
        ttl_seconds=3600,
        lock_seconds=30,
    )
    assert claim is not None and claim["payment_ids"] == []
    created = await rows(
        old.insert_processing_many(
            db,
            order_ids=[1, 2, 3],
            amounts=[Decimal(1000), Decimal(2000), Decimal(3000)],
            currencies=["JPY"] * 3,
            key_callers=["", None, None],
            key_endpoints=[CREATE, None, None],
            key_names=["rolling-deploy", None, None],
            key_tokens=[token, None, None],
        )
    )
    ids = [row["id"] for row in created]
    assert [row["status"] for row in created] == ["PROCESSING"] * 3
    settled = await rows(
        old.settle_payments(
            db,
            payment_ids=ids,
            transaction_ids=[row["transaction_id"] for row in created],
            statuses=["COMPLETED", "FAILED", "COMPLETED"],
            failure_codes=[None, "card_declined", None],
            failure_messages=[None, "The card was declined by its issuer.", None],
            request_ids=["r1", "r2", "r3"],
            from_statuses=["PROCESSING"],
        )
    )
    assert sorted(row["status"] for row in settled) == ["COMPLETED", "COMPLETED", "FAILED"]
    completed = await old.complete_idempotency_key(
        db,
        caller="",
        endpoint=CREATE,
        key="rolling-deploy",
        token=token,
        response_status=201,
        response_content_type="application/json",
        response_body=b"{}",
    )
    assert completed == "UPDATE 1"
    key = await checks.idempotency_key(db, endpoint=CREATE, key="rolling-deploy")
    assert key["payment_ids"] == [ids[0]] and key["response_status"] == 201

    found = await rows(old.find_payments(db, payment_ids=ids))
    assert {row["id"]: row["status"] for row in found} == dict(
        zip(ids, ["COMPLETED", "FAILED", "COMPLETED"], strict=True)
    )
    refund = await old.refund_payment(
        db,
        payment_id=ids[2],
        from_statuses=["COMPLETED"],
        amount=None,
        reason="cancelled",
        request_id="r4",
    )
    assert refund is not None and refund["payment_id"] == ids[2]
    retried = await old.start_retry(db, payment_id=ids[1], from_statuses=["FAILED"], **NO_KEY)
    assert retried is not None and retried["status"] == "PROCESSING"

    view = await old.payment_by_id(db, payment_id=ids[2])
    assert view["status"] == "REFUNDED" and '"cancelled"' in view["refunds"]
    page = await rows(
        old.list_payments(
            db, status=None, created_gte=None, created_lt=None, starting_after=None, max_rows=2
        )
    )
    rest = await rows(
        old.list_payments(
            db,
            status=None,
            created_gte=None,
            created_lt=None,
            starting_after=page[-1]["id"],
            max_rows=2,
        )
    )
    assert [row["id"] for row in page + rest] == ids[::-1]

    claimed = await rows(
        old.claim_due_events(db, relay_id="old-relay", lease_seconds=30, max_events=10)
    )
    # One event per order: order 3's refund waits for its completion to be delivered.
    assert sorted(row["order_id"] for row in claimed) == [1, 2, 3]
    delivered = await old.record_deliveries(db, ids=[row["id"] for row in claimed])
    assert delivered == "UPDATE 3"

    # And the release under way lists what the previous one created, newest first (once
    # every older transaction on the server has ended).
    async def listed_newest_first() -> bool:
        listed = await rows(
            load_queries().list_payments(
                db,
                status=None,
                created_gte=None,
                created_lt=None,
                metadata=None,
                after_xid=None,
                after_id=None,
                max_rows=10,
            )
        )
        return [row["id"] for row in listed] == ids[::-1]

    await wait_until(listed_newest_first, what="the payments listed newest first")


def later_migrations() -> list[str]:
    """The migrations after the snapshot's release that the marker does not list."""
    release = marker()
    return [
        path.name.removesuffix(".sql")
        for path in migration_files()
        if path.name[:4] >= release["predates"] and path.name[:4] not in release["migrations"]
    ]


def test_every_migration_since_the_snapshot_belongs_to_the_release_under_way() -> None:
    """The workflow: before the first migration of a new release, sql/ of the last
    release replaces the snapshot, so that the test above runs what is deployed."""
    later = later_migrations()
    release = marker()
    assert not later, (
        f"{', '.join(later)}: newer than the release tests/sql/previous_release/ predates "
        f"(its migrations: {', '.join(release['migrations'])}). Snapshot sql/ of the last "
        f"release before adding a migration: copy its sql/*.sql, unmodified, into "
        f"tests/sql/previous_release/ and set release.toml's predates, commit and "
        f"migrations (list a migration there only while its release is not shipped)."
    )


def git(*args: str) -> str | None:
    """The output of a git command in the checkout; None without git or the history."""
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        return None
    result = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, check=False
    )
    return result.stdout.decode() if result.returncode == 0 else None


def test_the_snapshot_is_sql_of_its_commit_unmodified() -> None:
    commit = marker()["commit"]
    listed = git("ls-tree", "--name-only", commit, "sql/")
    if listed is None:
        pytest.skip(f"the commit {commit} is not in this checkout's history")
    names = sorted(Path(name).name for name in listed.split() if name.endswith(".sql"))
    assert sorted(path.name for path in SNAPSHOT.glob("*.sql")) == names
    for name in names:
        assert (SNAPSHOT / name).read_text(encoding="utf-8") == git("show", f"{commit}:sql/{name}")
    # Taken before the first migration it predates.
    migrations = git("ls-tree", "--name-only", commit, "migrations/") or ""
    numbers = [Path(name).name[:4] for name in migrations.split() if name.endswith(".sql")]
    assert max(numbers) < marker()["predates"]
