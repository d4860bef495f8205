"""Fetch a real documentation corpus for retrieval evaluation: Django's docs as HTML.

Usage::

    python bench/corpus.py [--dest var/corpus/django-docs] [--limit N] [--with-releases]
    python bench/corpus.py --check bench/eval/django_docs.jsonl   # validate a question set

The pages come from Debian's ``python-django-doc`` package (Django 3.2 documentation built
by Sphinx). The package is fetched with ``apt-get download`` into a temporary directory and
unpacked with ``dpkg -x``; nothing is installed on the system.

Layout choice: the corpus is **flat**. Each page's path relative to the documentation root
becomes its file name with ``/`` replaced by ``.``, so ``ref/contrib/admin/index.html`` is
stored as ``ref.contrib.admin.index.html``. Django's docs reuse many base names
(``settings.html`` sits in both ``ref/`` and ``topics/``, there are 32 ``index.html``), and a
flat layout makes every file name unique, which is what the evaluation set
(``bench/eval/django_docs.jsonl``) refers to.

Left out: Sphinx machinery (``genindex``, ``search``, ``py-modindex``, ``_static``,
``_sources``, ``_images``), the highlighted source code under ``_modules`` (code listings,
not documentation) and, unless ``--with-releases`` is given, the release notes: they restate
reference text version after version, so they would answer many questions as well as the
page the evaluation set names, making its labels incomplete rather than the test harder.

``--check QA_FILE`` validates a question set against the corpus (building it first if
needed): every line parses, the fields are present and every expected source exists.

Idempotent: a finished corpus carries a ``.corpus.json`` manifest; when it matches the
request the command does nothing. A different request rebuilds the folder from scratch.
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGE = "python-django-doc"
HTML_ROOT_IN_PACKAGE = Path("usr/share/doc/python-django-doc/html")
MANIFEST_NAME = ".corpus.json"
SKIPPED_PAGES = frozenset({"genindex.html", "search.html", "py-modindex.html"})
SKIPPED_DIRS = frozenset({"_static", "_sources", "_images", "_modules"})
RELEASES_DIR = "releases"
QUESTION_KINDS = frozenset({"natural", "identifier"})


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

    def matches(self, *, limit: int | None, with_releases: bool) -> bool:
        return self.limit == limit and self.with_releases == with_releases


def flat_name(relative: Path) -> str:
    """``ref/contrib/admin/index.html`` -> ``ref.contrib.admin.index.html``."""
    return ".".join(relative.parts)


def is_wanted(relative: Path, *, with_releases: bool) -> bool:
    """Keep documentation pages; drop Sphinx machinery and, optionally, release notes."""
    if relative.suffix != ".html":
        return False
    if relative.parts[0] in SKIPPED_DIRS:
        return False
    if len(relative.parts) == 1 and relative.name in SKIPPED_PAGES:
        return False
    return with_releases or relative.parts[0] != RELEASES_DIR


def select_pages(html_root: Path, *, with_releases: bool, limit: int | None) -> list[Path]:
    """Relative paths of the pages to copy, sorted so ``--limit`` is deterministic."""
    pages = sorted(
        path.relative_to(html_root)
        for path in html_root.rglob("*.html")
        if is_wanted(path.relative_to(html_root), with_releases=with_releases)
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


def download_and_unpack(workdir: Path) -> tuple[Path, str]:
    """Download the Debian package into ``workdir`` and unpack it; return (html root, version)."""
    command = ["apt-get", "download", PACKAGE]
    if os.geteuid() == 0:
        # apt's sandbox user cannot write into a private temp dir; as root, skip the sandbox
        # instead of printing a warning on every run.
        command[1:1] = ["-o", "APT::Sandbox::User=root"]
    try:
        _run(command, cwd=workdir)
    except CorpusError as exc:
        raise CorpusError(
            f"could not download {PACKAGE} with apt: {exc}\n"
            "If apt says the package is unknown, run `apt-get update` first; "
            "this needs access to a Debian mirror."
        ) from exc
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise CorpusError(f"apt-get reported success but no {PACKAGE} .deb is in {workdir}")
    version = _run(["dpkg-deb", "--field", str(debs[0]), "Version"], cwd=workdir).strip()
    unpacked = workdir / "unpacked"
    _run(["dpkg", "-x", str(debs[0]), str(unpacked)], cwd=workdir)
    html_root = unpacked / HTML_ROOT_IN_PACKAGE
    if not html_root.is_dir():
        raise CorpusError(f"{PACKAGE} {version} has no {HTML_ROOT_IN_PACKAGE}")
    return html_root, version


def read_manifest(dest: Path) -> Manifest | None:
    try:
        return Manifest(**json.loads((dest / MANIFEST_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def build(dest: Path, *, limit: int | None, with_releases: bool) -> Manifest:
    """Build the corpus in a staging folder next to ``dest``, then swap it into place.

    Building beside ``dest`` and renaming at the end means an interrupted run never leaves a
    half-filled folder that a later run would mistake for a finished one.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="django-doc-") as tmp:
        html_root, version = download_and_unpack(Path(tmp))
        pages = select_pages(html_root, with_releases=with_releases, limit=limit)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            for relative in pages:
                shutil.copyfile(html_root / relative, staging / flat_name(relative))
            manifest = Manifest(
                package=PACKAGE,
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


def ensure_corpus(dest: Path, *, limit: int | None = None, with_releases: bool = False) -> bool:
    """Make sure ``dest`` holds the requested corpus; return True if it had to be built."""
    existing = read_manifest(dest)
    if existing is not None and existing.matches(limit=limit, with_releases=with_releases):
        return False
    build(dest, limit=limit, with_releases=with_releases)
    return True


def validate_qa(qa_path: Path, corpus: Path) -> list[str]:
    """Return the problems of a JSONL question set, one message per problem (empty: valid).

    Each line must be an object with a non-empty ``question``, a non-empty list of
    ``expected_sources`` naming files present in ``corpus``, and optionally a ``kind``.
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
        question, sources = item.get("question"), item.get("expected_sources")
        if not isinstance(question, str) or not question.strip():
            problems.append(f"{where}: missing or empty 'question'")
        elif question in seen:
            problems.append(f"{where}: duplicate question {question!r}")
        else:
            seen.add(question)
        if not isinstance(sources, list) or not sources:
            problems.append(f"{where}: 'expected_sources' must be a non-empty list")
        else:
            problems += [f"{where}: {s!r} is not in {corpus}" for s in sources if s not in present]
        if "kind" in item and item["kind"] not in QUESTION_KINDS:
            problems.append(f"{where}: unknown kind {item['kind']!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=Path("var/corpus/django-docs"))
    parser.add_argument("--limit", type=int, default=None, help="copy only the first N pages")
    parser.add_argument(
        "--with-releases", action="store_true", help="also copy the release notes (276 pages)"
    )
    parser.add_argument(
        "--check", type=Path, metavar="QA_FILE", help="validate a JSONL question set"
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be a positive number")
    try:
        built = ensure_corpus(args.dest, limit=args.limit, with_releases=args.with_releases)
    except CorpusError as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 1
    manifest = read_manifest(args.dest)
    assert manifest is not None
    state = "built" if built else "already present, nothing to do"
    print(
        f"corpus: {args.dest} {state}: {manifest.pages} pages, "
        f"{manifest.bytes / 1_000_000:.1f} MB ({manifest.package} {manifest.package_version})"
    )
    if args.check is not None:
        problems = validate_qa(args.check, args.dest)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        lines = args.check.read_text().splitlines()
        kinds = Counter(json.loads(line).get("kind", "unspecified") for line in lines)
        print(f"check: {args.check} is valid: {len(lines)} questions ({dict(kinds)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
