"""Page furniture repeated across the pages of one site: finding it, and taking it out.

A single page cannot tell its site's footer from its own last paragraph; many pages can. A
site's header, menus and footer sit at the edges of every page, in the same words. So each
page offers the lines at its edges (the first and last ``EDGE_WINDOW`` lines, outside code
blocks) as fingerprints; the caller remembers, per collection, which pages offered which
(``knowledge.services``), and a line is *repeated* when at least half the collection's pages,
and never fewer than three, offer it (:func:`min_pages`). Documentation sites repeat real
sentences at the edges of a few sibling pages ("This parameter can only be set in the
postgresql.conf file", a command's one-line summary at the top of its page and at the end of
two others): a count of three alone took those out; a site's header and footer are on nearly
every page.

Only the edges are peeled: from the top down and from the bottom up, repeated lines are dropped
until the first line of content, a sentence or a code block that is not repeated, stops the
peeling (a short line of the page's own, such as its title or a "Chapter 25 | Home | 25.2"
row, is kept and peeled past). The middle of a page is never touched, so a sentence that many pages share in their body (PostgreSQL's "-V --version",
"This command conforms to the SQL standard.") stays in every one of them. A page that would be
left empty keeps everything (a page of nothing but the site's own links is rare and harmless).

Pure Python: no Django, no database. The decision depends only on the page's fingerprints and
the counts, so re-deciding later with the same counts gives the same answer (re-indexing
converges).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .base import CODE_FENCE, ParsedDocument, Section, split_blocks

# Furniture is on (nearly) every page of a site; a sentence shared by sibling pages is on a few.
# Two pages agreeing (a page and its neighbour quoting the same title) is never enough.
MIN_PAGES = 3
MIN_SHARE = 0.5
# Lines looked at from each edge; a site's header or footer is rarely longer.
EDGE_WINDOW = 12
# Longer lines are prose, whatever their place; never fingerprinted.
MAX_LINE_CHARS = 1000


# A line of content: several words ending a sentence.
SENTENCE = re.compile(r"^\W*(?:\w+\W+){5,}.*[.!?:]\W{0,3}$", re.DOTALL)


@dataclass(frozen=True)
class Edge:
    """One line at a page's edge: ``position`` counts from the top (0, 1, ...) or from the
    bottom (-1 is the last line); ``fingerprint`` is None for a line that can never be
    furniture (code, long prose). ``content`` marks a line that stops the peeling unless it
    is repeated (a sentence, code)."""

    position: int
    fingerprint: int | None
    content: bool = False


def _lines(doc: ParsedDocument) -> list[tuple[int, int, int, str]]:
    """Every line of the document as (section, block, line, text); a code block is one line."""
    lines = []
    for s, section in enumerate(doc.sections):
        for b, block in enumerate(split_blocks(section.text)):
            if CODE_FENCE.match(block):
                lines.append((s, b, -1, block))
                continue
            for n, line in enumerate(block.split("\n")):
                if line.strip():
                    lines.append((s, b, n, line))
    return lines


def fingerprint(line: str) -> int | None:
    """A signed 64-bit hash of the line's words, case-folded (what a ``bigint`` holds)."""
    if CODE_FENCE.match(line) or len(line) > MAX_LINE_CHARS:
        return None
    normal = " ".join(line.casefold().split()).removeprefix("- ")
    if not normal:
        return None
    digest = hashlib.blake2b(normal.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def page_edges(doc: ParsedDocument, window: int = EDGE_WINDOW) -> list[Edge]:
    """The page's first and last ``window`` lines as fingerprints (a short page's lines may
    appear twice, once from each edge)."""
    lines = _lines(doc)
    top = [_edge(i, text) for i, (*_, text) in enumerate(lines[:window])]
    bottom = [_edge(-k, lines[-k][3]) for k in range(1, min(window, len(lines)) + 1)]
    return top + bottom


def _edge(position: int, text: str) -> Edge:
    fingerprint_ = fingerprint(text)
    return Edge(position, fingerprint_, fingerprint_ is None or bool(SENTENCE.match(text)))


def min_pages(pages: int) -> int:
    """How many of a collection's ``pages`` must offer a line for it to be furniture."""
    return max(MIN_PAGES, math.ceil(MIN_SHARE * pages))


def repeated(counts: Mapping[int, int], pages: int) -> set[int]:
    """The fingerprints offered by enough pages: ``counts[fingerprint]`` is how many pages of
    the collection (this one included) offer it, ``pages`` how many pages it holds."""
    floor = min_pages(pages)
    return {fingerprint for fingerprint, count in counts.items() if count >= floor}


def furniture(edges: list[Edge], repeated: set[int]) -> set[int]:
    """The positions to drop: peeled from each edge while the line's fingerprint is repeated."""
    dropped: set[int] = set()
    top = sorted((e for e in edges if e.position >= 0), key=lambda e: e.position)
    bottom = sorted((e for e in edges if e.position < 0), key=lambda e: -e.position)
    for side in (top, bottom):
        for edge in side:
            if edge.fingerprint in repeated:
                dropped.add(edge.position)
            elif edge.content:
                break
    return dropped


def without_furniture(doc: ParsedDocument, positions: set[int]) -> ParsedDocument:
    """The document without the lines at ``positions`` (from :func:`furniture`); sections left
    empty disappear. Returned unchanged when nothing would be left."""
    if not positions:
        return doc
    lines = _lines(doc)
    gone = {
        lines[p if p >= 0 else len(lines) + p][:3]
        for p in positions
        if -len(lines) <= p < len(lines)
    }
    if len(gone) >= len(lines):
        return doc
    touched = {s for s, _, _ in gone}
    sections = []
    for s, section in enumerate(doc.sections):
        if s not in touched:
            sections.append(section)
            continue
        blocks = []
        for b, block in enumerate(split_blocks(section.text)):
            if CODE_FENCE.match(block):
                if (s, b, -1) not in gone:
                    blocks.append(block)
                continue
            kept = [line for n, line in enumerate(block.split("\n")) if (s, b, n) not in gone]
            if any(line.strip() for line in kept):
                blocks.append("\n".join(kept))
        if blocks:
            sections.append(Section("\n\n".join(blocks), section.heading_path, section.page))
    return ParsedDocument(title=doc.title, sections=sections, metadata=doc.metadata)
