"""The layout shows the architecture, and imports run one way (top to bottom).

cli → app → api → {commands, queries, outbox} → db → {gateway, domain, settings}
Operator tools (ops, importer, outbox CLI) sit beside the CLI; small shared
modules (signing, metrics, logging, request context, waiting, backoff) sit at the bottom.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service"

# Higher number = higher layer. A module may import only its own layer or lower ones,
# never a sibling of the same rank in another package (e.g. commands -> queries).
LAYERS: dict[str, int] = {
    "cli": 8,
    "app": 7,
    "ops": 7,
    "importer": 7,
    "lifespan": 6,
    "api": 5,
    "background": 5,
    "commands": 4,
    "queries": 4,
    "outbox": 4,
    "db": 3,
    "gateway": 2,
    "domain": 2,
    "settings": 1,
    "log_config": 1,
    "signing": 0,
    "exact_json": 0,
    "metrics": 0,
    "request_context": 0,
    "waiting": 0,
    "backoff": 0,
}


def unit_of(module: str) -> str:
    return module.split(".")[1]


def is_module(name: str) -> bool:
    path = SERVICE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("service."):
            # `from service.x import y` of a module y imports y (and its package, which
            # for a circle is y's own concern).
            submodules = {f"{node.module}.{a.name}" for a in node.names}
            named = {m for m in submodules if is_module(m)}
            found.update(named or {node.module})
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("service."))
    return found


def test_every_service_package_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in SERVICE.iterdir()}
    units -= {"__init__", "__pycache__"}
    assert units <= set(LAYERS), f"place these in LAYERS: {units - set(LAYERS)}"


def test_imports_only_go_down() -> None:
    wrong: list[str] = []
    for path in SERVICE.rglob("*.py"):
        parts = path.relative_to(SERVICE.parent).with_suffix("").parts
        if len(parts) < 2 or parts[1] == "__init__":
            continue
        here = parts[1]
        for target in imports_of(path):
            there = unit_of(target)
            if there == here:
                continue
            if LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{'/'.join(parts)} imports {target}")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(sorted(wrong))


def test_the_cqrs_split_is_visible_in_the_tree() -> None:
    """Each layer is a package of its own with modules of its own: not one module, and not
    everything in an `__init__.py`; the write side (commands) and the read side (queries) apart."""
    modules = {
        package: {p.stem for p in (SERVICE / package).glob("*.py")} - {"__init__"}
        for package in ("api", "commands", "queries", "outbox", "db", "domain", "gateway")
    }
    not_packages = [p for p in modules if not (SERVICE / p / "__init__.py").is_file()]
    assert not not_packages, f"not packages: {not_packages}"
    empty = [package for package, names in modules.items() if not names]
    assert not empty, f"layers without a module of their own: {empty}"


def test_no_modules_import_each_other() -> None:
    """No circle of imports, however long: a module that needs another's names and is
    needed by it is one concept cut in two."""
    graph: dict[str, set[str]] = {}
    for path in SERVICE.rglob("*.py"):
        module = ".".join(path.relative_to(SERVICE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        graph[module] = imports_of(path)
    done: set[str] = set()

    def circle_from(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done or module not in graph:
            return None
        for target in sorted(graph[module]):
            if (found := circle_from(target, [*path, module])) is not None:
                return found
        done.add(module)
        return None

    for module in sorted(graph):
        found = circle_from(module, [])
        assert found is None, "modules that import each other: " + " -> ".join(found)


# The relay's statements (sql/outbox.sql): its modules run them through RelayStore
# (service/db/relay_store.py), never by name.
RELAY_STATEMENTS = {
    "claim_due_events",
    "claim_probe_event",
    "record_outcomes",
    "release_claims_of_relay",
    "wake_relays",
    "relay_listener_ping",
    "try_lock_outbox_retention",
    "purge_delivered_events",
}
RELAY_MODULES = ("relay", "delivery", "breaker", "schedule", "listener", "wakeup", "processes")


def test_the_relay_reaches_its_statements_only_through_its_store() -> None:
    named: list[str] = []
    for module in RELAY_MODULES:
        path = SERVICE / "outbox" / f"{module}.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in RELAY_STATEMENTS:
                named.append(f"service/outbox/{module}.py:{node.lineno} {node.attr}")
    assert named == [], "statements named outside service/db/:\n" + "\n".join(named)
