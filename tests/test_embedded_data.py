"""Where the embedded PostgreSQL keeps its data, and who may create it.

A relative [database] embedded_dir is resolved against the config file's directory (the
working directory without a file); commands that only read refuse a directory without a
cluster instead of creating an empty one; serving and migrating still create it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from service.db.embedded import bin_dir, detach_embedded, has_cluster, start_embedded
from service.db.migrate import migration_files
from service.settings import load_settings
from tests.support.paths import server_directory
from tests.support.processes import clean_env

PAYMENTS = Path(sys.executable).parent / "payments"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("PAYMENTS_"):
            monkeypatch.delenv(variable)


def write_config(directory: Path, embedded_dir: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "payments.toml"
    path.write_text(f'[database]\nembedded_dir = "{embedded_dir}"\n', encoding="utf-8")
    return path


def payments(*args: str, config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    env["PAYMENTS_CONFIG"] = str(config)
    # Wide enough that the error box does not shorten a long temporary path.
    env["COLUMNS"] = "400"
    return subprocess.run(
        [str(PAYMENTS), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- resolution ------------------------------------------------------------------------------


def test_a_relative_embedded_dir_is_resolved_against_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "etc", "data/pg")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    settings = load_settings(env={"PAYMENTS_CONFIG": str(config)})
    assert Path(settings.database.embedded_dir) == tmp_path / "etc" / "data" / "pg"


def test_a_config_file_named_relatively_still_resolves_to_an_absolute_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path / "etc", "../data")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={"PAYMENTS_CONFIG": "etc/payments.toml"})
    assert Path(settings.database.embedded_dir) == tmp_path / "etc" / ".." / "data"
    assert Path(settings.database.embedded_dir).is_absolute()


def test_without_a_config_file_the_working_directory_is_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Path(load_settings(env={}).database.embedded_dir) == tmp_path / ".data" / "pg"


def test_an_absolute_embedded_dir_is_kept(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc", str(tmp_path / "pgdata"))
    settings = load_settings(env={"PAYMENTS_CONFIG": str(config)})
    assert settings.database.embedded_dir == str(tmp_path / "pgdata")


# --- creating it, or refusing to -------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    """`payments db migrate` run elsewhere, with a relative embedded_dir: the new cluster."""
    with server_directory("payments-embedded-") as root:
        config = write_config(root / "etc", "data/pg")
        (root / "work").mkdir()
        result = payments("db", "migrate", config=config, cwd=root / "work")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("applied: ")
        assert not (root / "work" / "data").exists()
        yield root / "etc" / "data" / "pg"


@pytest.mark.slow  # starts an embedded server or the CLI as a process
def test_migrating_creates_the_cluster_beside_the_config_file(cluster: Path) -> None:
    assert has_cluster(cluster)
    # The last process attached stopped the server when it exited.
    assert not (cluster / "postmaster.pid").exists()


@pytest.mark.slow  # starts an embedded server or the CLI as a process
def test_detaching_stops_the_server_this_process_started(cluster: Path) -> None:
    server = start_embedded(cluster)
    postmaster = psutil.Process(server.get_pid())
    detach_embedded()  # pgserver's public cleanup()
    postmaster.wait(timeout=30)
    assert not (cluster / "postmaster.pid").exists()


@pytest.mark.slow  # starts an embedded server or the CLI as a process
@pytest.mark.parametrize(
    "command",
    [
        ("db", "psql", "-c", "select 1"),
        ("ops", "run", "stuck_payments", "older_than_seconds=60"),
        ("outbox", "status"),
        ("outbox", "replay", "--all-dead"),
    ],
)
def test_reading_commands_refuse_a_directory_without_a_cluster(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = write_config(tmp_path / "etc", "data/pg")
    result = payments(*command, config=config, cwd=tmp_path)

    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert str(tmp_path / "etc" / "data" / "pg") in message
    assert "payments db migrate" in message and "payments run" in message
    assert not (tmp_path / "etc" / "data").exists(), "nothing was created"


@pytest.mark.slow  # starts an embedded server or the CLI as a process
def test_listing_the_ops_queries_needs_no_database(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc", "data/pg")
    result = payments("ops", config=config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ops_stuck_payments" in result.stdout
    assert not (tmp_path / "etc" / "data").exists()


@pytest.mark.slow  # starts an embedded server or the CLI as a process
def test_psql_opens_an_existing_cluster(tmp_path: Path, cluster: Path) -> None:
    config = write_config(tmp_path / "etc", str(cluster))
    sql = "select count(*) from schema_migrations"
    result = payments("db", "psql", "-At", "-c", sql, config=config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(migration_files())


# --- who can reach it -------------------------------------------------------------------------


@pytest.mark.slow  # starts an embedded server
def test_the_socket_directory_is_closed_to_other_users() -> None:
    """Whoever reaches the socket is a superuser (local connections are trusted).

    With a data directory whose path is too long for a unix socket, pgserver puts the
    socket in a runtime directory (mode 0755 from the umask, 0777 as root); the data
    directory itself is 0700 already.
    """
    with server_directory("payments-socket-") as root:
        data_dir = root / ("long-" * 24)
        server = start_embedded(data_dir)  # which also creates a database through the socket
        try:
            socket_dir = Path(server.get_postmaster_info().socket_dir)
            status = socket_dir.stat()
            owner = data_dir.stat().st_uid
        finally:
            detach_embedded()

    assert socket_dir != data_dir.resolve(), "the case under test: a socket outside the data"
    assert status.st_mode & 0o077 == 0, f"{socket_dir} is {oct(status.st_mode)}"
    assert status.st_uid == owner, "the server's own user keeps it"


# --- the one private name of pgserver ---------------------------------------------------------


def test_pgservers_binaries_are_where_bin_dir_says() -> None:
    """Fails loudly when a pgserver upgrade moves the binaries bin_dir() relies on."""
    for tool in ("psql", "createdb", "dropdb", "pgbench", "pg_ctl"):
        assert (bin_dir() / tool).is_file(), f"pgserver no longer ships {tool} in {bin_dir()}"
    version = subprocess.run(
        [str(bin_dir() / "psql"), "--version"], capture_output=True, text=True, check=True
    )
    assert "PostgreSQL" in version.stdout
