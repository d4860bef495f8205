"""The chat modules survive collectstatic under the storage production uses.

The browser imports them by relative paths (``./state.js``). Django's manifest storage hashes
every file's name; it rewrites those paths to the hashed names only when its JS module support
is switched on, and keeps the unhashed originals either way. Both must leave every import
pointing at a file that was collected. (The unit tests of the modules themselves run under
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
from whitenoise.storage import CompressedManifestStaticFilesStorage

# What assistant/project/settings.py selects when DEBUG is off.
PRODUCTION_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']\s*;""", re.M | re.S)
HASHED = re.compile(r"\.[0-9a-f]{12}\.js$")


class ModuleRewritingStorage(CompressedManifestStaticFilesStorage):
    """The production storage with Django's JS module import rewriting switched on."""

    support_js_module_import_aggregation = True


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
    [PRODUCTION_STORAGE, f"{__name__}.ModuleRewritingStorage"],
    ids=["as-is", "rewriting"],
)
def test_every_import_of_the_collected_entry_point_finds_its_file(tmp_path, backend):
    root, entry = collect(tmp_path, backend)
    assert HASHED.search(entry), entry
    graph = module_graph(root, entry)
    assert len(graph) >= 10  # the whole page came along, not just the entry point
    rewriting = backend != PRODUCTION_STORAGE
    for module, imports in graph.items():
        for target in imports:
            # Rewritten, an import names a hashed (forever-cacheable) file; as-is, the original.
            assert bool(HASHED.search(target)) == rewriting, f"{module} imports {target}"
