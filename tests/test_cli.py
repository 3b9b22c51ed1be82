"""The `payments` console script and the Litestar CLI, run as a user would (subprocesses)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import pytest

from service.db.migrate import migration_files
from tests.support.order_stub import OrderServiceStub
from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import TestPostgres
from tests.support.processes import PAYMENTS as PAYMENTS_MAIN
from tests.support.processes import ServiceProcess, clean_env, service_env
from tests.support.service import free_port

BIN = Path(sys.executable).parent
PAYMENTS = BIN / "payments"
LITESTAR = BIN / "litestar"
EXPECTED_VERSIONS = [path.stem for path in migration_files()]
# Every test starts the CLI as a process (a second or two each).
pytestmark = pytest.mark.slow


@pytest.fixture
def empty_database_url(postgres: TestPostgres) -> Iterator[str]:
    name, url = postgres.create_database()
    yield url
    postgres.drop_database(name)


def run(*args: str | Path, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    if database_url is not None:
        env["PAYMENTS_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def commands_listed(help_text: str) -> set[str]:
    """Command names of a click (or rich-click boxed) help screen: `name  description`."""
    return set(re.findall(r"^[^\w-]*?([a-z][\w-]*) {2,}\S", help_text, re.MULTILINE))


PROJECT_COMMANDS = {"db", "serve", "ops", "outbox", "relay", "import"}


def test_payments_help_lists_run_and_the_project_commands() -> None:
    output = ok(run(PAYMENTS, "--help"))
    assert {"run", *PROJECT_COMMANDS} <= commands_listed(output)


def test_litestar_with_the_app_has_the_project_commands_too() -> None:
    """The app's CLI plugin adds them, not the `payments` script."""
    output = ok(run(LITESTAR, "--app", "service.app:create_app", "--help"))
    assert {"run", *PROJECT_COMMANDS} <= commands_listed(output)


def test_payments_db_help_lists_migrate_and_psql() -> None:
    output = ok(run(PAYMENTS, "db", "--help"))
    assert {"migrate", "psql"} <= commands_listed(output)


def test_payments_db_migrate_applies_then_says_up_to_date(empty_database_url: str) -> None:
    first = ok(run(PAYMENTS, "db", "migrate", database_url=empty_database_url))
    assert first.strip() == "applied: " + ", ".join(EXPECTED_VERSIONS)

    second = ok(run(PAYMENTS, "db", "migrate", database_url=empty_database_url))
    assert second.strip() == "schema is up to date"


def test_payments_db_psql_runs_on_the_configured_database(empty_database_url: str) -> None:
    ok(run(PAYMENTS, "db", "migrate", database_url=empty_database_url))

    output = ok(
        run(
            PAYMENTS,
            "db",
            "psql",
            "-At",
            "-c",
            "select count(*) from schema_migrations",
            database_url=empty_database_url,
        )
    )

    assert output.strip() == str(len(EXPECTED_VERSIONS))


def test_payments_db_psql_passes_on_psql_failures(empty_database_url: str) -> None:
    result = run(
        PAYMENTS, "db", "psql", "-c", "select * from no_such_table", database_url=empty_database_url
    )
    assert result.returncode != 0
    assert "no_such_table" in result.stderr


async def _execute(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _psql_child(parent: psutil.Process, within: float = 30.0) -> psutil.Process:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for child in parent.children(recursive=True):
            if child.name() == "psql":
                return child
        time.sleep(0.02)
    raise AssertionError(f"no psql child within {within}s")


def test_payments_db_psql_keeps_the_password_off_psqls_command_line(
    empty_database_url: str,
) -> None:
    """Any local user can read a command line (ps, /proc/<pid>/cmdline): no password there."""
    role, password = f"psql_argv_{os.getpid()}", "argv-secret-7f3a"
    asyncio.run(_execute(empty_database_url, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    parts = urlsplit(empty_database_url)
    netloc = f"{role}:{password}@" + parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=netloc))
    env = clean_env()
    env["PAYMENTS_DATABASE_URL"] = url
    sql = "select current_user, pg_sleep(1)"
    try:
        with subprocess.Popen(
            [str(PAYMENTS), "db", "psql", "-At", "-c", sql],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as command:
            psql = _psql_child(psutil.Process(command.pid))
            argv = Path(f"/proc/{psql.pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{psql.pid}/environ").read_bytes().split(b"\0")
            stdout, stderr = command.communicate(timeout=60)
    finally:
        asyncio.run(_execute(empty_database_url, f"DROP ROLE IF EXISTS {role}"))

    assert command.returncode == 0, stderr
    assert password.encode() not in argv, argv
    assert f"PGPASSWORD={password}".encode() in environ
    # It connected where the URL says, as the URL's user.
    assert stdout.split("|")[0] == role


def test_the_main_function_is_the_console_script(empty_database_url: str) -> None:
    code = "from service.cli import main; main()"
    output = ok(run(sys.executable, "-c", code, "db", "migrate", database_url=empty_database_url))
    assert output.strip().startswith("applied: ")


def test_litestar_lists_the_payment_routes() -> None:
    output = ok(run(LITESTAR, "--app", "service.app:create_app", "routes"))
    for path in (
        "/api/v1/payments",
        "/api/v1/payments/{payment_id:str}",
        "/api/v1/payments/order/{order_id:int}",
        "/api/v1/payments/refund",
        "/api/v1/payments/webhook",
    ):
        assert path in output, path


def test_errors_are_one_plain_line_when_not_on_a_terminal(tmp_path: Path) -> None:
    # Scripts and logs read the message: no box around it, no border splitting it.
    missing = tmp_path / "absent.toml"
    env = clean_env() | {"PAYMENTS_CONFIG": str(missing)}
    unconfigured = subprocess.run(
        [str(PAYMENTS), "db", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    assert unconfigured.returncode == 1
    assert unconfigured.stderr == f"Error: PAYMENTS_CONFIG names {missing}, which does not exist\n"
    unknown = run(PAYMENTS, "db", "no-such-command")
    assert unknown.returncode == 2
    assert "Error: No such command 'no-such-command'." in unknown.stderr.splitlines()
    assert not set("│╭╰─") & set(unknown.stderr)


# --- authentication off on an address other machines reach ----------------------------------

OPEN_ACCESS = "anyone who can reach it can pay and refund"
WITH_TOKENS = '[auth]\ntokens = ["t0ken"]\n'


async def start_up_output(
    tmp_path: Path,
    database_url: str,
    order_stub: OrderServiceStub,
    **commands: tuple[list[str], str],
) -> dict[str, str]:
    """What each command (argv, then `--port`; its config file's text) wrote until it
    served, by name: all started at once, then stopped."""
    processes = {}
    for name, (argv, config_text) in commands.items():
        config = tmp_path / f"{name}.toml"
        config.write_text(config_text)
        processes[name] = ServiceProcess(
            port=free_port(),
            env=service_env(config, database_url, order_stub.url),
            log=tmp_path / f"{name}.log",
            argv=argv,
        )
    try:
        for process in processes.values():
            process.start()
        await asyncio.gather(*(process.wait_ready() for process in processes.values()))
    finally:
        for process in processes.values():
            process.stop()
    return {name: process.log.read_text() for name, process in processes.items()}


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if OPEN_ACCESS in line]


async def test_serve_without_tokens_on_a_non_loopback_address_warns_naming_it(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub
) -> None:
    everywhere = [*PAYMENTS_MAIN, "serve", "--host", "0.0.0.0"]
    output = await start_up_output(
        tmp_path,
        database_url,
        order_stub,
        open=(everywhere, ""),
        with_tokens=(everywhere, WITH_TOKENS),
        loopback=([*PAYMENTS_MAIN, "serve", "--host", "127.0.0.1"], ""),
    )

    [warning] = warnings_in(output["open"])
    assert '"level":"WARNING"' in warning
    assert "authentication is off" in warning and "listens on 0.0.0.0 port" in warning
    assert warnings_in(output["with_tokens"]) == []
    assert warnings_in(output["loopback"]) == []


async def test_run_warns_too_naming_server_host_or_its_own_host_option(
    tmp_path: Path, database_url: str, order_stub: OrderServiceStub
) -> None:
    """`payments run` binds [server] host (through LITESTAR_HOST), `litestar run` its --host."""
    litestar_run = [str(LITESTAR), "--app", "service.app:create_app", "run"]
    output = await start_up_output(
        tmp_path,
        database_url,
        order_stub,
        payments_run=([*PAYMENTS_MAIN, "run"], '[server]\nhost = "0.0.0.0"\n'),
        litestar_run=([*litestar_run, "--host", "0.0.0.0"], ""),
        litestar_run_loopback=([*litestar_run, "--host", "localhost"], ""),
    )

    for name in ("payments_run", "litestar_run"):
        [warning] = warnings_in(output[name])
        assert "listens on 0.0.0.0 port" in warning, name
    assert warnings_in(output["litestar_run_loopback"]) == []
