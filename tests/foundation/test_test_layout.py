"""The tests' own layout (docs/architecture.md): shared fixtures live in one plugin module,
tests/support/fixtures.py, and shared helpers in tests/support/; a test module never imports
from a conftest or from another test module, and never redefines a shared fixture as it is."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
PLUGIN = "tests.support.fixtures"
# The fixtures of the plugin that modules used to copy; a module may still define one of these
# names, but only to mean something different (another scope, another reply, another setting).
SHARED = {"make_user", "admin", "handbook", "llm_server", "celery_worker", "daphne_server"}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files(root: Path = TESTS) -> dict[str, Path]:
    """Every Python module under ``root`` (the tests package), by dotted name."""
    return {
        _module_name(path, root): path
        for path in sorted(root.rglob("*.py"))
        if not any(part.startswith(".") or part == "node_modules" for part in path.parts)
    }


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _imported(name: str, path: Path, node: ast.AST) -> list[str]:
    """The dotted names an import statement loads (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    # ``from tests.knowledge import test_views`` imports a test module too.
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _is_test_or_conftest(dotted: str, known: dict[str, Path]) -> bool:
    last = dotted.rpartition(".")[2]
    return dotted in known and (last == "conftest" or last.startswith("test_"))


def forbidden_imports(root: Path = TESTS) -> list[str]:
    """``module imports target`` for each import of a conftest or a test module (anywhere in a
    module, a function's body included): helpers belong in tests/support/."""
    known = python_files(root)
    return sorted(
        f"{name} imports {target}"
        for name, path in known.items()
        for node in ast.walk(_tree(path))
        for target in _imported(name, path, node)
        if _is_test_or_conftest(target, known)
    )


def _is_fixture(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) in {"pytest.fixture", "fixture", "pytest_asyncio.fixture"}:
            return True
    return False


def _without_docstring(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The fixture as code (decorators, name, arguments, body), its docstring left out."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    copy = type(function)(**{**{f: getattr(function, f) for f in function._fields}, "body": body})
    return ast.dump(copy)


def fixtures(path: Path) -> dict[str, str]:
    """The module-level fixtures a file defines: name -> code without the docstring."""
    return {
        node.name: _without_docstring(node)
        for node in _tree(path).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _is_fixture(node)
    }


def copied_fixtures(root: Path = TESTS, plugin: Path | None = None) -> list[str]:
    """``module redefines name`` for each shared fixture a module defines again, unchanged."""
    shared = fixtures(plugin or python_files(root)[PLUGIN])
    return sorted(
        f"{name} redefines {fixture}"
        for name, path in python_files(root).items()
        if name != PLUGIN
        for fixture, code in fixtures(path).items()
        if fixture in SHARED and code == shared.get(fixture)
    )


def test_the_walk_sees_the_layout():
    """The rules below mean something only if the walk finds what they are about."""
    known = python_files()
    assert {"tests.conftest", "tests.security.conftest", PLUGIN} <= known.keys()
    assert sum(name.rpartition(".")[2].startswith("test_") for name in known) > 50
    assert fixtures(known[PLUGIN]).keys() >= SHARED
    assert 'pytest_plugins = ["tests.support.fixtures"]' in known["tests.conftest"].read_text()


def test_the_rules_catch_what_they_are_about(tmp_path):
    root = tmp_path / "tests"
    files = {
        "__init__.py": "",
        "conftest.py": "def helper(): ...\n",
        "support/__init__.py": "",
        "support/fixtures.py": FIXTURE_ADMIN.format(decorator="@pytest.fixture", doc=""),
        "a/__init__.py": "",
        "a/test_one.py": "def helper(): ...\n",
        "a/test_two.py": "from tests.conftest import helper\nfrom .test_one import helper\n",
        "a/test_three.py": "def test_it():\n    from tests.a import test_one\n",
        "b/__init__.py": "",
        "b/test_copy.py": FIXTURE_ADMIN.format(decorator="@pytest.fixture", doc='"""Mine."""'),
        "b/test_other.py": FIXTURE_ADMIN.format(
            decorator='@pytest.fixture(scope="module")', doc=""
        ),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)

    assert forbidden_imports(root) == [
        "tests.a.test_three imports tests.a.test_one",
        "tests.a.test_two imports tests.a.test_one",
        "tests.a.test_two imports tests.conftest",
    ]
    # A copy with only another docstring is still a copy; another scope is another fixture.
    assert copied_fixtures(root) == ["tests.b.test_copy redefines admin"]


FIXTURE_ADMIN = """import pytest


{decorator}
def admin(make_user):
    {doc}
    return make_user(email="admin@example.com", is_staff=True, is_superuser=True)
"""


def test_nothing_imports_from_a_conftest_or_a_test_module():
    """A conftest holds fixtures for its folder and a test module holds tests; anything two
    modules need goes to tests/support/ (fixtures to the plugin)."""
    assert forbidden_imports() == []


def test_no_module_redefines_a_shared_fixture_unchanged():
    """A copy of a shared fixture hides the shared one: the two drift apart silently."""
    assert copied_fixtures() == []
