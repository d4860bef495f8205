"""The chat modules survive collectstatic under the storage production uses.

The browser imports them by relative paths (``./state.js``). Django's manifest storage hashes
every file's name; it rewrites those paths to the hashed names only when its JS module support
is switched on (assistant/project/storage.py does), and keeps the unhashed originals either
way. Both must leave every import pointing at a file that was collected; production's must
name hashed files only, so one release's modules never mix with another's. (The unit tests of the modules themselves run under
Node: ``node --test tests/js/``.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.test import override_settings

from assistant.project.env import Env
from tests.support.django_settings import django_settings

# What assistant/project/settings.py selects when DEBUG is off, and the same without rewriting.
PRODUCTION_STORAGE = "assistant.project.storage.StaticStorage"
AS_IS_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']\s*;""", re.M | re.S)
HASHED = re.compile(r"\.[0-9a-f]{12}\.js$")


def collect(tmp_path: Path, backend: str) -> tuple[Path, str]:
    root = tmp_path / "static"
    js_dir = Path(settings.BASE_DIR) / "static" / "js"
    with override_settings(
        STATIC_ROOT=root,
        STATICFILES_DIRS=[("js", js_dir)],  # only our scripts: fast, and all that matters here
        STATICFILES_FINDERS=["django.contrib.staticfiles.finders.FileSystemFinder"],
        STORAGES={**settings.STORAGES, "staticfiles": {"BACKEND": backend}},
    ):
        call_command("collectstatic", interactive=False, verbosity=0)
        entry = staticfiles_storage.stored_name("js/chat/main.js")
    return root, entry


def module_graph(root: Path, entry: str) -> dict[str, list[str]]:
    """Every module reachable from ``entry`` (paths under ``root``) and what each imports."""
    graph: dict[str, list[str]] = {}
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in graph:
            continue
        file = root / path
        assert file.is_file(), f"{path} is imported but was not collected"
        specs = IMPORT.findall(file.read_text())
        graph[path] = [str(Path(path).parent / spec) for spec in specs]
        todo.extend(graph[path])
    return graph


@pytest.mark.parametrize(
    "backend",
    [AS_IS_STORAGE, PRODUCTION_STORAGE],
    ids=["as-is", "production"],
)
def test_every_import_of_the_collected_entry_point_finds_its_file(tmp_path, backend):
    root, entry = collect(tmp_path, backend)
    assert HASHED.search(entry), entry
    graph = module_graph(root, entry)
    assert len(graph) >= 10  # the whole page came along, not just the entry point
    rewriting = backend == PRODUCTION_STORAGE
    for module, imports in graph.items():
        for target in imports:
            # Rewritten, an import names a hashed (forever-cacheable) file; as-is, the original.
            assert bool(HASHED.search(target)) == rewriting, f"{module} imports {target}"


def test_production_serves_the_modules_from_the_rewriting_storage():
    production = django_settings(Env({}), debug=False)
    assert production["STORAGES"]["staticfiles"]["BACKEND"] == PRODUCTION_STORAGE
    development = django_settings(Env({}), debug=True)  # served by the finders, unhashed
    assert development["STORAGES"]["staticfiles"]["BACKEND"] != PRODUCTION_STORAGE
