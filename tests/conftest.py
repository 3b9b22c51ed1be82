"""Fixtures: a real PostgreSQL, a fresh migrated database per test, a real Order Service stub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from service.db.migrate import migrate
from tests.support.localstripe import LocalStripe
from tests.support.order_stub import OrderServiceStub
from tests.support.postgres import TestPostgres, before_workers_start
from tests.support.service import RunningService, serve
from tests.support.settings import make_settings


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The fast loop (`pytest -m "not slow"`) runs on every core (pytest-xdist) unless
    told otherwise (`-n 0`, `-p no:xdist`): its tests wait on the database and on
    their own service half the time, so two processes take two thirds of one's time.
    The whole suite stays in one process: its slow tests run crashes, outages and
    several services as processes of their own, and sharing the cores with other
    tests made them flaky, not the run shorter."""
    wants_fast_loop = "not slow" in (config.option.markexpr or "")
    in_a_worker = hasattr(config, "workerinput")
    if wants_fast_loop and not in_a_worker and getattr(config.option, "numprocesses", 0) is None:
        config.option.numprocesses = "auto"
    if not in_a_worker:
        before_workers_start()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    server = TestPostgres()
    yield server
    server.close()


@pytest.fixture(scope="session")
def template_database(postgres: TestPostgres) -> str:
    """One migrated database per session; each test gets a copy of it."""
    name, url = postgres.create_database()
    asyncio.run(migrate(url))
    postgres.make_reusable(name)
    return name


@pytest.fixture
async def database_url(postgres: TestPostgres, template_database: str) -> AsyncIterator[str]:
    """A database as fresh as a new copy of the template, for this test alone."""
    name, url = await postgres.copy_of(template_database)
    yield url
    postgres.give_back(name, template_database)


@pytest.fixture
def order_stub() -> Iterator[OrderServiceStub]:
    stub = OrderServiceStub().start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """A localstripe server (tests/support/localstripe.py) for the module's tests."""
    with LocalStripe() as server:
        yield server


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[object]:
    """A plain asyncpg connection to this test's database, for assertions."""
    import asyncpg

    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def service(database_url: str, order_stub: OrderServiceStub) -> AsyncIterator[RunningService]:
    """The service with default settings on this test's database and stub."""
    async with serve(make_settings(database_url, order_stub.url)) as running:
        yield running
