"""A database URL as libpq's environment (`payments db psql` passes it so, never in argv)."""

from __future__ import annotations

import pytest

from service.db.libpq_env import UnsupportedURL, libpq_environment


def test_a_url_with_a_password_becomes_the_pg_variables() -> None:
    env = libpq_environment("postgresql://payments:s%40cret%3A1@db.internal:6432/pay%2Fments")
    assert env == {
        "PGHOST": "db.internal",
        "PGPORT": "6432",
        "PGUSER": "payments",
        "PGPASSWORD": "s@cret:1",
        "PGDATABASE": "pay/ments",
    }


def test_the_embedded_servers_socket_url() -> None:
    env = libpq_environment("postgresql://postgres:@/payments?host=/tmp/pg%20sock")
    assert env == {
        "PGHOST": "/tmp/pg sock",
        "PGUSER": "postgres",
        "PGPASSWORD": "",
        "PGDATABASE": "payments",
    }


def test_query_parameters_go_to_their_variables() -> None:
    env = libpq_environment(
        "postgres:///?dbname=d&user=u&password=p&sslmode=verify-full&application_name=ops"
    )
    assert env == {
        "PGDATABASE": "d",
        "PGUSER": "u",
        "PGPASSWORD": "p",
        "PGSSLMODE": "verify-full",
        "PGAPPNAME": "ops",
    }


def test_several_hosts_keep_their_ports_in_order() -> None:
    env = libpq_environment("postgresql://h1:5432,[::1]:5433,h3/db")
    assert env["PGHOST"] == "h1,::1,h3"
    assert env["PGPORT"] == "5432,5433,"


def test_other_parameters_are_server_settings_as_asyncpg_sends_them() -> None:
    env = libpq_environment("postgresql:///db?options=-c%20a%3D1&search_path=x%20y")
    assert env["PGOPTIONS"] == "-c a=1 -c search_path=x\\ y"


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "postgresql://u@h/db?sslpassword=key-secret"])
def test_what_libpq_cannot_take_from_its_environment_is_refused(url: str) -> None:
    with pytest.raises(UnsupportedURL):
        libpq_environment(url)
