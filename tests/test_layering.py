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
    "configuration": 2,
    "settings": 1,
    "log_config": 1,
    "signing": 0,
    "metrics": 0,
    "request_context": 0,
    "waiting": 0,
    "backoff": 0,
}


def unit_of(module: str) -> str:
    return module.split(".")[1]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("service."):
            found.add(node.module)
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


# The relay's statements (sql/outbox.sql): its modules run them through RelayStore
# (service/db/relay_store.py), never by name. The operators' side (maintenance.py, cli.py)
# is outside this rule for now.
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
