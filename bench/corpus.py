"""Fetch a real documentation corpus for retrieval evaluation: Django, Python or PostgreSQL docs.

Usage::

    python bench/corpus.py [--corpus django-docs] [--dest var/corpus/django-docs]
                           [--limit N] [--with-releases]
    python bench/corpus.py --check bench/eval/django_docs.jsonl   # validate a question set
    python bench/corpus.py --corpus python-docs --check bench/eval/python_docs.jsonl
    python bench/corpus.py --corpus postgres-docs --check bench/eval/postgres_docs.jsonl

Three corpora, each from a Debian package of HTML documentation:

- ``django-docs`` (the default): ``python-django-doc``, the Django 3.2 documentation
  (Sphinx). The retrieval is tuned on this one (``bench/eval/django_docs.jsonl``).
- ``python-docs``: ``python3.11-doc``, the Python 3.11 documentation (Sphinx). Held out:
  nobody tunes on it; its questions (``bench/eval/python_docs.jsonl``) were written from the
  pages alone.
- ``postgres-docs``: ``postgresql-doc-15``, the PostgreSQL 15 documentation (DocBook), a
  subset of it (below). Held out too, a second time: its questions
  (``bench/eval/postgres_docs.jsonl``) were written from the pages alone, to confirm a
  ranking choice made on the other two.

The package is fetched with ``apt-get download`` into a temporary directory and unpacked
with ``dpkg -x``; nothing is installed on the system.

Layout choice: the corpus is **flat**. Each page's path relative to the documentation root
becomes its file name with ``/`` replaced by ``.``, so ``ref/contrib/admin/index.html`` is
stored as ``ref.contrib.admin.index.html`` and ``library/os.path.html`` as
``library.os.path.html``. Both Sphinx sets of docs reuse base names (``settings.html`` sits in
both ``ref/`` and ``topics/``, every section has an ``index.html``), and a flat layout makes
every file name unique, which is what the evaluation sets refer to. PostgreSQL's HTML is
already flat (one folder, one page per section), so its pages keep their own names.

Left out of Django's and Python's: Sphinx machinery (``genindex``, ``search``,
``py-modindex``, ``_static``, ``_sources``, ``_images``) and, unless ``--with-releases`` is
given, the release notes (Django's ``releases/``, Python's ``whatsnew/`` with its
changelog): they restate reference text version after version, so they would answer many
questions as well as the page the evaluation set names, making its labels incomplete rather
than the test harder.

Left out of Django's: the highlighted source code under ``_modules`` (code listings, not
documentation).

Left out of Python's: more Sphinx machinery (the per-letter indexes ``genindex-A.html`` …
``genindex-all.html``, ``_downloads``) and, for the same reason as the release notes (they
would answer what another page already answers), ``includes/`` (a fragment, the WebAssembly
availability note, that Sphinx already pasted into every page that uses it) and the legacy
packaging manuals ``distutils/`` and ``install/`` ("Legacy version", for a module that 3.12
removes), which restate for ``setup.py`` what ``installing/``, ``distributing/`` and
``library/`` say for current tools. Kept, as for Django: ``contents.html``, ``glossary.html``
and the section ``index`` pages (tables of contents and short definitions, realistic
distractors that name many identifiers without explaining them), the C API, the FAQ and the
top-level pages (about, bugs, copyright, license, download).

PostgreSQL's documentation is 1,169 pages, too many to embed in reasonable time, so
``postgres-docs`` is a **subset of 431 pages**, whole chapters chosen by file name
(``POSTGRES_PAGES``): what a user of SQL or the administrator of a running server reads,
prose chapters (Parts II and III explain and compare) next to reference pages (Part VI, one
page per command or tool, and the configuration chapter, one page per group of settings),
so that a question often has a prose page and a reference page that both answer it:

- Part II, The SQL Language, in full (137 pages): syntax, data definition and manipulation,
  queries, data types, functions and operators, type conversion, indexes, full text search,
  concurrency control, performance tips, parallel query (``sql-syntax*``, ``ddl*``,
  ``dml*``, ``queries*``, ``datatype*``, ``functions*``, ``indexes*``, ``textsearch*``,
  ``mvcc*`` …).
- Part III, Server Administration, the chapters on running a server (71 pages): server
  configuration (``runtime-config*``), client authentication (``client-authentication*``,
  ``auth-*``), database roles, routine maintenance (vacuum, reindex), backup and restore,
  high availability and replication, monitoring (``monitoring*``, progress reporting), disk
  usage, and reliability and the WAL (``wal*``, checksums).
- Part VI, Reference, in full (219 pages): every SQL command (``sql-*``, one page each) and
  the client and server applications (``app-*``, ``pgbench``, ``pgupgrade``, ``pgwaldump`` …).
- Appendix A, the error codes table (``errcodes-appendix.html``).
- The tables of contents of those three parts (``sql.html``, ``admin.html``,
  ``reference.html``), as for the other corpora.

Left out of PostgreSQL's, to stay within the page budget or because another kept page
already says it: the preface and Part I, the tutorial (it restates Part II's basics); from
Part III, installation (binaries, from source, on Windows), server setup and operation,
managing databases, localization, logical replication, JIT and the regression tests; Parts
IV (client interfaces: libpq, ECPG, the information schema), V (server programming:
PL/pgSQL, triggers, SPI …) and VII (internals, system catalogs); the other appendixes
(among them F, the contrib modules, whose ``auth-delay.html`` a pattern would otherwise
catch, C's key-word table, and O's redirect stubs for renamed tools, such as
``app-pgresetxlog.html``); the release notes (``release*.html``, unless ``--with-releases``,
for the same reason as the others'); and the book machinery: ``index.html`` (the title page
and full table of contents), ``bookindex.html`` (the back-of-book index), the stylesheet and
SVG figures.

``--check QA_FILE`` validates a question set against the chosen corpus (building it first if
needed): every line parses, the fields are present and every expected source exists. A line
marked ``"unanswerable": true`` (the answer evaluation's near misses) must instead have an
empty ``expected_sources``.

Idempotent: a finished corpus carries a ``.corpus.json`` manifest; when it matches the
request the command does nothing. A different request rebuilds the folder from scratch.
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST_NAME = ".corpus.json"
QUESTION_KINDS = frozenset({"natural", "identifier"})


@dataclass(frozen=True)
class CorpusSpec:
    """Where a corpus comes from and which of its pages are documentation worth keeping."""

    name: str
    package: str
    html_root_in_package: Path
    skipped_pages: frozenset[str]  # top-level pages only
    skipped_page_prefixes: tuple[str, ...]  # top-level pages only
    skipped_dirs: frozenset[str]
    releases: str  # the release notes: a folder, or a pattern of top-level page names
    kept_pages: tuple[str, ...] = ()  # if given, keep only top-level pages matching one

    def is_wanted(self, relative: Path, *, with_releases: bool) -> bool:
        """Keep documentation pages; drop machinery, duplicates and, optionally, releases."""
        if relative.suffix != ".html":
            return False
        if relative.parts[0] in self.skipped_dirs:
            return False
        if len(relative.parts) == 1 and (
            relative.name in self.skipped_pages
            or relative.name.startswith(self.skipped_page_prefixes)
        ):
            return False
        if fnmatch.fnmatchcase(relative.parts[0], self.releases):
            return with_releases
        return not self.kept_pages or (
            len(relative.parts) == 1
            and any(fnmatch.fnmatchcase(relative.name, pattern) for pattern in self.kept_pages)
        )


SPHINX_PAGES = frozenset({"genindex.html", "search.html", "py-modindex.html"})
SPHINX_DIRS = frozenset({"_static", "_sources", "_images"})
# The PostgreSQL subset, whole chapters by file name (see the module docstring) ...
POSTGRES_PAGES = (
    # Part II, The SQL Language, in full.
    "sql.html",
    "sql-*.html",  # SQL syntax (Part II) and every SQL command (Part VI)
    "ddl*.html",
    "dml*.html",
    "queries*.html",
    "datatype*.html",
    "arrays.html",
    "rowtypes.html",
    "rangetypes.html",
    "domains.html",
    "functions*.html",
    "typeconv*.html",
    "indexes*.html",
    "textsearch*.html",
    "mvcc*.html",
    "transaction-iso.html",
    "explicit-locking.html",
    "applevel-consistency.html",
    "locking-indexes.html",
    "performance-tips.html",
    "using-explain.html",
    "planner-stats.html",
    "explicit-joins.html",
    "populate.html",
    "non-durability.html",
    "parallel-*.html",
    "how-parallel-query-works.html",
    "when-can-parallel-query-be-used.html",
    # Part III, Server Administration: configuration, authentication, roles, maintenance,
    # backup, high availability, monitoring, disk usage, WAL.
    "admin.html",
    "runtime-config*.html",
    "config-setting.html",
    "client-authentication*.html",
    "auth-*.html",
    "gssapi-auth.html",
    "sspi-auth.html",
    "user-manag.html",
    "database-roles.html",
    "role-*.html",
    "predefined-roles.html",
    "perm-functions.html",
    "maintenance.html",
    "routine-*.html",
    "logfile-maintenance.html",
    "backup.html",
    "backup-dump.html",
    "backup-file.html",
    "continuous-archiving.html",
    "high-availability.html",
    "different-replication-solutions.html",
    "warm-standby*.html",
    "hot-standby.html",
    "monitoring*.html",
    "progress-reporting.html",
    "dynamic-trace.html",
    "diskusage.html",
    "disk-*.html",
    "wal*.html",
    "checksums.html",
    # Part VI, Reference, in full: SQL commands, client and server applications.
    "reference*.html",
    "app-*.html",
    "pgbench.html",
    "pgarchivecleanup.html",
    "pgtestfsync.html",
    "pgtesttiming.html",
    "pgupgrade.html",
    "pgwaldump.html",
    # Appendix A, the error codes.
    "errcodes-appendix.html",
)
# ... less the pages of other chapters that those patterns catch.
POSTGRES_STRAYS = frozenset(
    {
        "sql-keywords-appendix.html",  # Appendix C, SQL Key Words
        "auth-delay.html",  # Appendix F, the auth_delay module
        "app-pgreceivexlog.html",  # Appendix O, redirect stubs for renamed tools
        "app-pgresetxlog.html",
    }
)
CORPORA = {
    "django-docs": CorpusSpec(
        name="django-docs",
        package="python-django-doc",
        html_root_in_package=Path("usr/share/doc/python-django-doc/html"),
        skipped_pages=SPHINX_PAGES,
        skipped_page_prefixes=(),
        skipped_dirs=SPHINX_DIRS | {"_modules"},
        releases="releases",
    ),
    "python-docs": CorpusSpec(
        name="python-docs",
        package="python3.11-doc",
        html_root_in_package=Path("usr/share/doc/python3.11/html"),
        skipped_pages=SPHINX_PAGES,
        skipped_page_prefixes=("genindex-",),
        skipped_dirs=SPHINX_DIRS | {"_downloads", "includes", "distutils", "install"},
        releases="whatsnew",
    ),
    "postgres-docs": CorpusSpec(
        name="postgres-docs",
        package="postgresql-doc-15",
        html_root_in_package=Path("usr/share/doc/postgresql-doc-15/html"),
        skipped_pages=POSTGRES_STRAYS,
        skipped_page_prefixes=(),
        skipped_dirs=frozenset(),
        releases="release*.html",
        kept_pages=POSTGRES_PAGES,
    ),
}
DEFAULT_CORPUS = "django-docs"


class CorpusError(RuntimeError):
    """The corpus could not be obtained; the message says why and what to try."""


@dataclass(frozen=True)
class Manifest:
    """What a finished corpus folder holds; compared to decide whether to rebuild."""

    package: str
    package_version: str
    limit: int | None
    with_releases: bool
    pages: int
    bytes: int

    def matches(self, spec: CorpusSpec, *, limit: int | None, with_releases: bool) -> bool:
        # The package too: pointing --dest at the other corpus's folder must rebuild it.
        return (
            self.package == spec.package
            and self.limit == limit
            and self.with_releases == with_releases
        )


def flat_name(relative: Path) -> str:
    """``ref/contrib/admin/index.html`` -> ``ref.contrib.admin.index.html``."""
    return ".".join(relative.parts)


def select_pages(
    spec: CorpusSpec, html_root: Path, *, with_releases: bool, limit: int | None
) -> list[Path]:
    """Relative paths of the pages to copy, sorted so ``--limit`` is deterministic."""
    pages = sorted(
        path.relative_to(html_root)
        for path in html_root.rglob("*.html")
        if spec.is_wanted(path.relative_to(html_root), with_releases=with_releases)
    )
    return pages if limit is None else pages[:limit]


def _run(command: list[str], *, cwd: Path) -> str:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise CorpusError(
            f"{command[0]} is not available: this needs a Debian-like system"
        ) from exc
    if result.returncode != 0:
        raise CorpusError(
            f"`{' '.join(command)}` failed (exit {result.returncode}):\n{result.stderr.strip()}"
        )
    return result.stdout


def download_and_unpack(spec: CorpusSpec, workdir: Path) -> tuple[Path, str]:
    """Download the Debian package into ``workdir`` and unpack it; return (html root, version)."""
    command = ["apt-get", "download", spec.package]
    if os.geteuid() == 0:
        # apt's sandbox user cannot write into a private temp dir; as root, skip the sandbox
        # instead of printing a warning on every run.
        command[1:1] = ["-o", "APT::Sandbox::User=root"]
    try:
        _run(command, cwd=workdir)
    except CorpusError as exc:
        raise CorpusError(
            f"could not download {spec.package} with apt: {exc}\n"
            "If apt says the package is unknown, run `apt-get update` first; "
            "this needs access to a Debian mirror."
        ) from exc
    debs = sorted(workdir.glob(f"{spec.package}_*.deb"))
    if not debs:
        raise CorpusError(f"apt-get reported success but no {spec.package} .deb is in {workdir}")
    version = _run(["dpkg-deb", "--field", str(debs[0]), "Version"], cwd=workdir).strip()
    unpacked = workdir / "unpacked"
    _run(["dpkg", "-x", str(debs[0]), str(unpacked)], cwd=workdir)
    html_root = unpacked / spec.html_root_in_package
    if not html_root.is_dir():
        raise CorpusError(f"{spec.package} {version} has no {spec.html_root_in_package}")
    return html_root, version


def read_manifest(dest: Path) -> Manifest | None:
    try:
        return Manifest(**json.loads((dest / MANIFEST_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def build(spec: CorpusSpec, dest: Path, *, limit: int | None, with_releases: bool) -> Manifest:
    """Build the corpus in a staging folder next to ``dest``, then swap it into place.

    Building beside ``dest`` and renaming at the end means an interrupted run never leaves a
    half-filled folder that a later run would mistake for a finished one.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{spec.name}-") as tmp:
        html_root, version = download_and_unpack(spec, Path(tmp))
        pages = select_pages(spec, html_root, with_releases=with_releases, limit=limit)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            for relative in pages:
                shutil.copyfile(html_root / relative, staging / flat_name(relative))
            manifest = Manifest(
                package=spec.package,
                package_version=version,
                limit=limit,
                with_releases=with_releases,
                pages=len(pages),
                bytes=sum((staging / flat_name(p)).stat().st_size for p in pages),
            )
            (staging / MANIFEST_NAME).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
            staging.chmod(0o755)
            if dest.exists():
                shutil.rmtree(dest)
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return manifest


def ensure_corpus(
    dest: Path,
    *,
    spec: CorpusSpec = CORPORA[DEFAULT_CORPUS],
    limit: int | None = None,
    with_releases: bool = False,
) -> bool:
    """Make sure ``dest`` holds the requested corpus; return True if it had to be built."""
    existing = read_manifest(dest)
    if existing is not None and existing.matches(spec, limit=limit, with_releases=with_releases):
        return False
    build(spec, dest, limit=limit, with_releases=with_releases)
    return True


def validate_qa(qa_path: Path, corpus: Path) -> list[str]:
    """Return the problems of a JSONL question set, one message per problem (empty: valid).

    Each line must be an object with a non-empty ``question`` and a non-empty list of
    ``expected_sources`` naming files present in ``corpus``; optionally a ``kind`` and an
    ``answer_contains`` list of non-empty strings. A line with ``"unanswerable": true`` must
    have an empty ``expected_sources`` instead (no page answers it).
    """
    present = {path.name for path in corpus.glob("*.html")}
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(qa_path.read_text().splitlines(), start=1):
        where = f"{qa_path}:{number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            problems.append(f"{where}: not JSON ({exc})")
            continue
        if not isinstance(item, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        question = item.get("question")
        if not isinstance(question, str) or not question.strip():
            problems.append(f"{where}: missing or empty 'question'")
        elif question in seen:
            problems.append(f"{where}: duplicate question {question!r}")
        else:
            seen.add(question)
        problems += [f"{where}: {problem}" for problem in _item_problems(item, present, corpus)]
    return problems


def _item_problems(item: dict, present: set[str], corpus: Path) -> list[str]:
    problems: list[str] = []
    sources, unanswerable = item.get("expected_sources"), item.get("unanswerable", False)
    if unanswerable not in (True, False):
        problems.append(f"'unanswerable' must be true or false, not {unanswerable!r}")
    elif unanswerable:
        if sources != []:
            problems.append("an unanswerable question needs 'expected_sources': []")
    elif not isinstance(sources, list) or not sources:
        problems.append("'expected_sources' must be a non-empty list")
    else:
        problems += [f"{s!r} is not in {corpus}" for s in sources if s not in present]
    if "kind" in item and item["kind"] not in QUESTION_KINDS:
        problems.append(f"unknown kind {item['kind']!r}")
    contains = item.get("answer_contains")
    if "answer_contains" in item and not (
        isinstance(contains, list)
        and contains
        and all(isinstance(c, str) and c.strip() for c in contains)
    ):
        problems.append("'answer_contains' must be a non-empty list of non-empty strings")
    return problems


def _kind_of(item: dict) -> str:
    return "unanswerable" if item.get("unanswerable") else item.get("kind", "unspecified")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus",
        choices=sorted(CORPORA),
        default=DEFAULT_CORPUS,
        help=f"which documentation to fetch (default {DEFAULT_CORPUS})",
    )
    parser.add_argument(
        "--dest", type=Path, default=None, help="target folder (default var/corpus/CORPUS)"
    )
    parser.add_argument("--limit", type=int, default=None, help="copy only the first N pages")
    parser.add_argument(
        "--with-releases",
        action="store_true",
        help=(
            "also copy the release notes (Django: 276 pages; Python: whatsnew/, 21 pages; "
            "PostgreSQL: release*.html, 23 pages)"
        ),
    )
    parser.add_argument(
        "--check", type=Path, metavar="QA_FILE", help="validate a JSONL question set"
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be a positive number")
    spec = CORPORA[args.corpus]
    dest = args.dest if args.dest is not None else Path("var/corpus") / spec.name
    try:
        built = ensure_corpus(dest, spec=spec, limit=args.limit, with_releases=args.with_releases)
    except CorpusError as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 1
    manifest = read_manifest(dest)
    assert manifest is not None
    state = "built" if built else "already present, nothing to do"
    print(
        f"corpus: {dest} {state}: {manifest.pages} pages, "
        f"{manifest.bytes / 1_000_000:.1f} MB ({manifest.package} {manifest.package_version})"
    )
    if args.check is not None:
        problems = validate_qa(args.check, dest)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        lines = args.check.read_text().splitlines()
        kinds = Counter(_kind_of(json.loads(line)) for line in lines)
        print(f"check: {args.check} is valid: {len(lines)} questions ({dict(kinds)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
