"""What a wheel needs: the SQL as package resources, every dependency declared, the CLI plugin.

.ci/wheel-check builds and installs the real wheel; these are the fast checks of the same facts.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from importlib.resources import files
from pathlib import Path

import aiosql
import click

from service.app import COMMANDS_ENTRY_POINTS, ProjectCommands, create_app
from service.db.migrate import migration_files
from service.db.sql import load_queries
from tests.support.paths import PROJECT_ROOT
from tests.support.settings import make_settings

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SERVICE = PROJECT_ROOT / "service"
PROJECT_COMMANDS = {"db", "serve", "ops", "outbox", "relay", "import"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- sql/ and migrations/ as package resources ----------------------------------------------


def test_the_sql_files_are_resources_of_service_sql() -> None:
    shipped = {f.name for f in files("service.sql").iterdir() if f.name.endswith(".sql")}
    assert shipped == {p.name for p in (PROJECT_ROOT / "sql").glob("*.sql")}


def test_the_migrations_are_resources_of_service_migrations() -> None:
    assert [f.name for f in migration_files()] == sorted(
        p.name for p in (PROJECT_ROOT / "migrations").glob("*.sql")
    )
    assert all(f.read_text(encoding="utf-8").strip() for f in migration_files())


def test_load_queries_holds_every_query_of_every_sql_file() -> None:
    expected: set[str] = set()
    for path in (PROJECT_ROOT / "sql").glob("*.sql"):
        expected |= set(aiosql.from_path(path, "asyncpg").available_queries)
    assert set(load_queries().available_queries) == expected


def test_the_wheel_maps_sql_and_migrations_into_the_package() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"service.sql": "sql", "service.migrations": "migrations"}
    assert setuptools["package-data"] == {
        "service.sql": ["*.sql"],
        "service.migrations": ["*.sql"],
        "service.api.console": ["templates/*.html", "static/*.css"],
    }


def test_the_consoles_templates_and_stylesheet_are_package_data() -> None:
    console = files("service.api.console")
    shipped = {f"templates/{f.name}" for f in console.joinpath("templates").iterdir()}
    shipped |= {f"static/{f.name}" for f in console.joinpath("static").iterdir()}
    assert {"templates/base.html", "templates/payment.html", "static/console.css"} <= shipped
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["service.api.console"]
    assert all(any(Path(name).match(p) for p in patterns) for name in shipped)


def test_every_package_of_service_ships_in_the_wheel() -> None:
    on_disk = {
        ".".join(init.parent.relative_to(PROJECT_ROOT).parts)
        for init in SERVICE.rglob("__init__.py")
    }
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"


# --- dependencies -----------------------------------------------------------------------------


def third_party_imports() -> set[str]:
    """Top-level modules that service/ imports, outside the standard library and itself."""
    found: set[str] = set()
    for path in SERVICE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names} - {"service"}


def test_every_package_the_service_imports_is_a_declared_dependency() -> None:
    declared = {
        normalized(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])
        for requirement in PYPROJECT["project"]["dependencies"]
    }
    distributions = packages_distributions()
    undeclared = {
        module: distributions[module]
        for module in third_party_imports()
        if not {normalized(d) for d in distributions[module]} & declared
    }
    assert not undeclared, f"import without a dependency in pyproject.toml: {undeclared}"


def test_the_bench_extra_brings_psutil() -> None:
    bench = PYPROJECT["project"]["optional-dependencies"]["bench"]
    assert any(normalized(requirement).startswith("psutil") for requirement in bench)


# --- the CLI plugin ---------------------------------------------------------------------------


def test_the_app_carries_the_project_commands_plugin() -> None:
    app = create_app(make_settings("postgresql://unused/db", "http://unused"))
    assert any(isinstance(plugin, ProjectCommands) for plugin in app.plugins.cli)


def test_the_plugin_adds_the_project_commands_to_a_cli_group() -> None:
    group = click.Group("payments")
    ProjectCommands().on_cli_init(group)
    assert set(group.commands) == PROJECT_COMMANDS
    assert all(isinstance(command, click.Command) for command in group.commands.values())


def test_the_commands_are_entry_points_of_the_installed_package() -> None:
    declared = PYPROJECT["project"]["entry-points"][COMMANDS_ENTRY_POINTS]
    assert set(declared) == PROJECT_COMMANDS


def test_no_module_patches_litestars_cli_group() -> None:
    patched = [
        str(path.relative_to(PROJECT_ROOT))
        for path in Path(SERVICE).rglob("*.py")
        if "litestar_group.add_command" in path.read_text(encoding="utf-8")
    ]
    assert not patched
