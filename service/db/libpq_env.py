"""A PostgreSQL URL as libpq's environment variables, for the tools run as child processes.

A URL on a command line is visible to every local user (`ps`, /proc/<pid>/cmdline),
password included; a process's environment only to its own user and root.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

# Connection parameters of a URL's query that libpq also reads from the environment.
PARAMETER_VARIABLES = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "database": "PGDATABASE",  # asyncpg's spelling
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "channel_binding": "PGCHANNELBINDING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


class UnsupportedURL(ValueError):
    """The URL says something libpq cannot be told through its environment."""


def _hosts_and_ports(netloc: str) -> tuple[list[str], list[str]]:
    """`h1:5432,[::1]:5433` -> (["h1", "::1"], ["5432", "5433"]); empty parts stay empty."""
    hosts: list[str] = []
    ports: list[str] = []
    for part in netloc.split(","):
        if part.startswith("["):
            host, _, rest = part[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = part.partition(":")
        hosts.append(unquote(host))
        ports.append(port)
    return hosts, ports


def libpq_environment(url: str) -> dict[str, str]:
    """The PG* variables that make libpq (psql, pg_dump, ...) connect where `url` says."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise UnsupportedURL(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
    userinfo, _, netloc = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    env: dict[str, str] = {}
    hosts, ports = _hosts_and_ports(netloc)
    if any(hosts):
        env["PGHOST"] = ",".join(hosts)
    if any(ports):
        env["PGPORT"] = ",".join(ports)
    if user:
        env["PGUSER"] = unquote(user)
    if has_password:
        env["PGPASSWORD"] = unquote(password)
    if database := unquote(parts.path.removeprefix("/")):
        env["PGDATABASE"] = database
    server_settings: list[str] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in PARAMETER_VARIABLES:
            env[PARAMETER_VARIABLES[name]] = value
        elif name == "sslpassword":
            raise UnsupportedURL("libpq takes sslpassword from no environment variable")
        else:
            # asyncpg sends any other parameter as a server setting, as -c does.
            escaped = value.replace("\\", "\\\\").replace(" ", "\\ ")
            server_settings.append(f"-c {name}={escaped}")
    if server_settings:
        env["PGOPTIONS"] = " ".join(filter(None, [env.get("PGOPTIONS"), *server_settings]))
    return env
