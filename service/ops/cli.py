"""`payments ops`: list the operators' named queries; `payments ops run NAME k=v` runs one."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from service.db.embedded import NoEmbeddedCluster, existing_database_url
from service.db.errors import DATABASE_ERRORS
from service.ops.queries import OpsQuery, find_query, ops_queries, run_query
from service.ops.table import format_json, format_table
from service.settings import load_settings


def parse_value(raw: str) -> int | float | str:
    """A parameter from the command line: an int if it is one, else a float, else text."""
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def parse_params(query: OpsQuery, pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or name not in query.parameters:
            raise click.UsageError(f"{query.name} takes {_signature(query)}; got {pair!r}")
        params[name] = parse_value(raw)
    if missing := [name for name in query.parameters if name not in params]:
        raise click.UsageError(f"{query.name} needs {', '.join(f'{m}=...' for m in missing)}")
    return params


def _signature(query: OpsQuery) -> str:
    return f"{query.name}({', '.join(query.parameters)})"


def _echo_list() -> None:
    for query in ops_queries().values():
        click.echo(_signature(query))
        click.echo(f"    {query.question}")
    click.echo()
    click.echo("Run one: payments ops run NAME param=value ... [--json]")
    click.echo("In psql: \\dv+ ops.*  lists the views they read, with the question each answers.")


@click.group("ops", invoke_without_command=True)
def ops_group() -> None:
    """Operators' questions (sql/ops.sql, views of the `ops` schema); lists them by default."""
    # Not @click.pass_context: Litestar's CLI group would pass `ctx` a second time.
    if click.get_current_context().invoked_subcommand is None:
        _echo_list()


@ops_group.command("list")
def list_command() -> None:
    """List the named queries and the question each answers."""
    _echo_list()


@ops_group.command("run")
@click.argument("name")
@click.argument("params", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def run_command(name: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run the named query NAME with its parameters as name=value (e.g. order_id=42)."""
    query = find_query(name)
    if query is None:
        raise click.UsageError(f"no ops query named {name!r}; `payments ops` lists them")
    values = parse_params(query, params)
    try:
        database = load_settings().database
        url = existing_database_url(database)
        result = asyncio.run(run_query(url, query, values, database))
    except NoEmbeddedCluster as exc:
        raise click.ClickException(str(exc)) from exc
    except DATABASE_ERRORS as exc:
        raise click.ClickException(f"{query.name}: {exc}") from exc
    click.echo(format_json(result) if as_json else format_table(result))
