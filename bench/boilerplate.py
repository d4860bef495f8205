"""How many chunks page furniture costs, and what each layer of its removal takes out.

Parser and chunker only (no embedding, no database, no services: seconds per corpus), on the
HTML corpora under ``var/corpus`` (``bench/corpus.py`` builds them). Four runs per corpus:

- ``before``: the HTML parser without its furniture rules (the per-page rules as they were);
- ``(a) per page``: the parser's structural rules (navigation class shapes, navigation labels,
  link rows);
- ``(b) across pages`` alone: the old parser, then the lines repeated at the edges of at least
  ``MIN_PAGES`` pages dropped (``knowledge/parsing/furniture.py``), counted over the whole
  corpus as indexing converges to once every page is in;
- ``(a) + (b)``: what indexing does now.

Chunks are made as indexing makes them (the embedder's tokenizer, the settings' default target
and overlap). It prints the counts, the furniture lines each layer removed (most frequent
first) and a sample of the chunks that disappeared, for checking by eye that none is content::

    .venv/bin/python bench/boilerplate.py [--corpus postgres-docs ...] (default: every corpus
        of postgres-docs, django-docs and python-docs that is there)
        [--corpus-root /work/main/var/corpus] [--sample 20] [--seed 14]
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_info, machine_line, markdown_table, results_dir, write_json
from knowledge.chunking import chunk_document
from knowledge.embeddings.local import LocalEmbedder
from knowledge.parsing import ParsedDocument, ParseLimits
from knowledge.parsing import furniture as layer_b
from knowledge.parsing.html import HtmlParser

# The defaults of CHUNK_TARGET_TOKENS and CHUNK_OVERLAP_TOKENS (assistant/project/settings.py).
TARGET_TOKENS, OVERLAP_TOKENS = 180, 30


class _OldHtmlParser(HtmlParser):
    furniture_rules = False


def _parse_all(paths: list[Path], parser: HtmlParser) -> dict[str, ParsedDocument]:
    limits = ParseLimits()
    return {
        path.name: parser.parse(
            path.read_bytes(), filename=path.name, content_type=None, limits=limits
        )
        for path in paths
    }


def _across_pages(docs: dict[str, ParsedDocument]) -> dict[str, ParsedDocument]:
    """Layer (b) as it stands once every page of the collection has been indexed."""
    edges = {name: layer_b.page_edges(doc) for name, doc in docs.items()}
    pages: collections.Counter[int] = collections.Counter()
    for page_edges in edges.values():
        pages.update({e.fingerprint for e in page_edges if e.fingerprint is not None})
    repeated = layer_b.repeated(pages, len(docs))
    return {
        name: layer_b.without_furniture(doc, layer_b.furniture(edges[name], repeated))
        for name, doc in docs.items()
    }


def _lines(doc: ParsedDocument) -> collections.Counter[str]:
    return collections.Counter(text for *_, text in layer_b._lines(doc))


def _chunks(docs: dict[str, ParsedDocument], count) -> dict[str, list[str]]:
    return {
        name: [
            d.text
            for d in chunk_document(
                doc, target_tokens=TARGET_TOKENS, overlap_tokens=OVERLAP_TOKENS, count_tokens=count
            )
        ]
        for name, doc in docs.items()
    }


def _removed_lines(before, after) -> collections.Counter[str]:
    removed: collections.Counter[str] = collections.Counter()
    for name, doc in before.items():
        removed.update(_lines(doc) - _lines(after[name]))
    return removed


def _gone_chunks(before, after, docs_before, docs_after) -> tuple[list, int]:
    """Chunks of the baseline made only of lines that were removed (``gone``), and how many
    baseline chunks no longer exist as they were (their passage lost a line or moved)."""
    gone, changed = [], 0
    for name, texts in before.items():
        kept = set(after[name])
        removed = _lines(docs_before[name]) - _lines(docs_after[name])
        for text in texts:
            if text in kept:
                continue
            changed += 1
            lines = [line for line in text.split("\n") if line.strip()]
            if lines and all(line in removed for line in lines):
                gone.append((name, text))
    return gone, changed


def measure(corpus: Path, sample: int, seed: int, count) -> dict:
    paths = sorted(corpus.glob("*.html"))
    started = time.monotonic()
    old = _parse_all(paths, _OldHtmlParser())
    new = _parse_all(paths, HtmlParser())
    runs = {"before": old, "a": new, "b": _across_pages(old), "a+b": _across_pages(new)}
    chunks = {label: _chunks(docs, count) for label, docs in runs.items()}
    totals = {label: sum(map(len, per_page.values())) for label, per_page in chunks.items()}
    rng = random.Random(seed)
    report = {
        "corpus": corpus.name,
        "pages": len(paths),
        "chunks": totals,
        "seconds": round(time.monotonic() - started, 1),
        "layers": {},
    }
    # What each layer takes out beyond the one before it: (a) from the baseline, (b) from (a).
    for label, base, done in (("a", "before", "a"), ("b", "a", "a+b"), ("b alone", "before", "b")):
        lines = _removed_lines(runs[base], runs[done])
        gone, changed = _gone_chunks(chunks[base], chunks[done], runs[base], runs[done])
        report["layers"][label] = {
            "chunks_removed": totals[base] - totals[done],
            "chunks_made_only_of_furniture": len(gone),
            "chunks_changed": changed,
            "lines_removed": sum(lines.values()),
            "top_lines": lines.most_common(25),
            "sample_gone_chunks": rng.sample(gone, min(sample, len(gone))),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", action="append", help="postgres-docs, django-docs, ...")
    parser.add_argument("--corpus-root", type=Path, default=Path("var/corpus"))
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    names = args.corpus or [
        name
        for name in ("postgres-docs", "django-docs", "python-docs")
        if (args.corpus_root / name).is_dir()
    ]
    if not names:
        raise SystemExit(f"No corpus under {args.corpus_root}: build one with bench/corpus.py.")
    info = machine_info()
    count = LocalEmbedder().count_tokens
    reports = [measure(args.corpus_root / name, args.sample, args.seed, count) for name in names]
    print(machine_line(info))
    rows = []
    for r in reports:
        c = r["chunks"]
        rows.append(
            [r["corpus"], r["pages"], c["before"], c["a"], c["b"], c["a+b"],
             f"{1 - c['a+b'] / c['before']:.1%}"]
        )  # fmt: skip
    print(
        markdown_table(
            ["corpus", "pages", "before", "(a) per page", "(b) alone", "(a)+(b)", "fewer"], rows
        )
    )
    for r in reports:
        for label, layer in r["layers"].items():
            print(
                f"\n## {r['corpus']}: layer {label}: {layer['chunks_removed']} chunks fewer, "
                f"{layer['chunks_made_only_of_furniture']} were only furniture, "
                f"{layer['chunks_changed']} changed, "
                f"{layer['lines_removed']} lines removed"
            )
            for text, n in layer["top_lines"]:
                print(f"  {n:5d} × {text[:110]!r}")
            print("  sample of the chunks that were only furniture:")
            for name, text in layer["sample_gone_chunks"]:
                print(f"    [{name}] {' / '.join(text.split(chr(10)))[:220]!r}")
    write_json(results_dir() / "boilerplate.json", {"machine": info, "corpora": reports})


if __name__ == "__main__":
    main()
