"""The import rules of docs/architecture.md, checked on the source (every import statement,
at module level or inside a function): the development stack stays out of the product, the
apps stack in floors, doors sit on top, and nothing imports in a circle."""

from __future__ import annotations

import ast
import graphlib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Not the product: tests and benchmarks may import anything, the development stack included.
NOT_PRODUCT = {"tests", "bench", ".venv", "var", "node_modules"}
DEVSTACK = "assistant.devstack"
DEVSTACK_ENTRY = "assistant.embedded"  # `python -m assistant.embedded`: calls the devstack
WIRING = "assistant.project"
WIRING_FOR_DOMAIN = {"assistant.project.tasking", "assistant.project.threads"}
DOOR_NAMES = {"views", "api", "consumers", "admin", "urls", "tasks", "routing", "mcp_server"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """The project's own modules (migrations included), by dotted name."""
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if rel[0] in NOT_PRODUCT or any(part.startswith(".") for part in rel):
            continue
        found[_module_name(path)] = path
    return found


def _resolve(name: str) -> str | None:
    """The project module an import of ``name`` loads (``a.b.func`` -> ``a.b``), if any."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@cache
def imports() -> dict[str, frozenset[str]]:
    """Module -> the project modules it imports (its own parent packages left out: importing
    ``assistant.memory.services`` runs ``assistant/memory/__init__.py``, which is no edge)."""
    graph = {}
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                wanted = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in filter(None, map(_resolve, wanted)):
                if target != name and not name.startswith(target + "."):
                    targets.add(target)
        graph[name] = frozenset(targets)
    return graph


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_door(name: str) -> bool:
    return name.rpartition(".")[2] in DOOR_NAMES or ".management.commands." in name


def _violations(may_import) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source, targets in imports().items()
        for target in targets
        if not may_import(source, target)
    )


def test_the_walk_sees_the_layout():
    """The rules below mean something only if the walk finds what they are about."""
    names = modules().keys()
    assert {"assistant.devstack.launcher", "assistant.devstack.localmodel"} <= names
    assert {"assistant.project.settings", "assistant.project.tasking", DEVSTACK_ENTRY} <= names
    assert "assistant.devstack.launcher" in imports()[DEVSTACK_ENTRY]


def test_nothing_but_its_entry_point_imports_the_development_stack():
    """Production code never imports the launcher or the local model: it is told what runs
    where through the environment, as in production."""

    def may_import(source, target):
        return not _within(target, DEVSTACK) or (
            _within(source, DEVSTACK) or source == DEVSTACK_ENTRY
        )

    assert _violations(may_import) == []


def test_nothing_imports_a_devstack_module_by_name_either():
    """An ``importlib.import_module("assistant.devstack...")`` or a dotted path in a setting
    would dodge the import statements."""
    found = [
        name
        for name, path in modules().items()
        if not (_within(name, DEVSTACK) or name == DEVSTACK_ENTRY)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith((DEVSTACK, "assistant.embedded", "assistant.localmodel"))
    ]
    assert found == []


@pytest.mark.parametrize(
    ("app", "forbidden"), [("accounts", ("assistant", "knowledge")), ("knowledge", ("assistant",))]
)
def test_the_apps_stack_in_floors(app, forbidden):
    """assistant over knowledge over accounts, no arrow back up; a domain app may use the
    wiring's two helpers (enqueue after commit, the async ORM door) and nothing else of it."""

    def may_import(source, target):
        if not _within(source, app) or target in WIRING_FOR_DOMAIN:
            return True
        return not any(_within(target, upper) for upper in forbidden)

    assert _violations(may_import) == []


def test_the_domain_uses_only_the_wirings_helpers():
    def may_import(source, target):
        # manage.py is wiring too: the command line's entry point, like asgi.py is the web's.
        wiring = _within(source, WIRING) or source in ("assistant", "manage")
        domain = not (wiring or _within(source, DEVSTACK))
        return not (domain and _within(target, WIRING)) or target in WIRING_FOR_DOMAIN

    assert _violations(may_import) == []


def test_nothing_below_a_door_imports_a_door():
    """Doors (views, the API, the consumer, admin, URLs, tasks, commands) call services and
    selectors; services, selectors and models never reach back up into a door."""

    def may_import(source, target):
        below = not (_is_door(source) or _within(source, WIRING) or _within(source, DEVSTACK))
        return not (below and _is_door(target))

    assert _violations(may_import) == []


def test_there_are_no_import_cycles():
    sorter = graphlib.TopologicalSorter({name: set(deps) for name, deps in imports().items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")
