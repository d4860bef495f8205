"""Structure-aware chunking: a `ParsedDocument` in, passages sized for embedding out.

Chunks follow the document's structure. A chunk never spans two heading paths or two pages,
except that tiny neighbouring sections (an FAQ's short answers) are merged so they do not
become useless fragments. Long sections are split at paragraphs, then sentences (lines for
code and tables), with a few sentences of overlap so a split never strands a thought.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from knowledge.parsing import ParsedDocument, Section
from knowledge.parsing.base import split_blocks as _blocks

TokenCounter = Callable[[str], int]

TOKEN = re.compile(r"\w+|[^\w\s]")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def approx_token_count(text: str) -> int:
    """Roughly what a WordPiece/BPE tokenizer counts: one per word (more for long words),
    one per punctuation mark. Cheap, and close enough to size chunks; pass the embedding
    model's real tokenizer as `count_tokens` when exact budgets matter."""
    return sum(1 + len(token) // 10 for token in TOKEN.findall(text))


# Texts joined by whitespace count as the sum of their parts: no token spans whitespace.
approx_token_count.tokens_additive = True  # type: ignore[attr-defined]


class _Counter:
    """`count_tokens` with a memory: the chunker asks about the same text several times.

    A counter that declares `tokens_additive = True` (on the function, or on the object whose
    method it is, such as an embedder) promises that texts joined by whitespace count as the
    sum of their counts: true of WordPiece after whitespace pre-splitting and of
    `approx_token_count`, not of byte-level BPE, where whitespace belongs to the tokens. Then
    each paragraph is counted once, and sections and chunks by adding up their paragraphs.
    Either way the chunks are the same; only the work of counting changes.
    """

    def __init__(self, count_tokens: TokenCounter) -> None:
        self._count = count_tokens
        self.additive = bool(
            getattr(count_tokens, "tokens_additive", False)
            or getattr(getattr(count_tokens, "__self__", None), "tokens_additive", False)
        )
        self._known: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        tokens = self._known.get(text)
        if tokens is None:
            tokens = self._known[text] = self._count(text)
        return tokens


@dataclass(frozen=True)
class ChunkDraft:
    """A passage ready to be embedded and stored; `text` is what users see and cite."""

    ordinal: int
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    token_count: int
    embed_text: str  # title + heading path + text: the passage with its context


@dataclass(frozen=True)
class _Unit:
    """A piece of a section that is never split further while packing."""

    text: str
    tokens: int
    sep: str  # joins it to the unit before: "\n\n" new block, " " same paragraph, "\n" same table
    prose: bool  # whether its trailing sentences may be repeated as overlap


# (heading path, page, text, its tokens; the latter only exact when the counter is additive)
_Passage = tuple[tuple[str, ...], int | None, str, int]


def chunk_document(
    doc: ParsedDocument,
    *,
    target_tokens: int = 200,
    overlap_tokens: int = 30,
    count_tokens: TokenCounter = approx_token_count,
    merge_below_tokens: int | None = None,
) -> list[ChunkDraft]:
    """Split a parsed document into ordered chunks of about `target_tokens` (at most ~1.5x).

    Sections smaller than `merge_below_tokens` (default: a quarter of the target) may merge
    with tiny siblings on the same page. An empty document gives an empty list.
    """
    if target_tokens < 8:
        raise ValueError("target_tokens must be at least 8")
    tiny = target_tokens // 4 if merge_below_tokens is None else merge_below_tokens
    overlap = max(0, min(overlap_tokens, target_tokens // 4))
    count = _Counter(count_tokens)
    sections = [section for section in doc.sections if section.text.strip()]
    blocks = [_blocks(section.text) for section in sections]
    passages: list[_Passage] = []
    group: list[tuple[Section, int]] = []  # tiny sections waiting to be merged
    for section, section_blocks in zip(sections, blocks, strict=True):
        if count.additive:
            tokens = sum(count(block) for block in section_blocks)
        else:
            tokens = count(section.text)
        if not tokens:
            continue
        if tokens < tiny and _joins_group(group, section, tokens, target_tokens):
            group.append((section, tokens))
            continue
        passages.extend(_merge(group, count))
        group = []
        if tokens < tiny:
            group = [(section, tokens)]
            continue
        units = _section_units(section_blocks, target_tokens, count)
        for text, text_tokens in _pack(units, target_tokens, overlap, count):
            passages.append((section.heading_path, section.page, text, text_tokens))
    passages.extend(_merge(group, count))
    return [
        ChunkDraft(
            ordinal=ordinal,
            text=text,
            heading_path=path,
            page=page,
            token_count=tokens if count.additive else count(text),
            embed_text=_embed_text(doc.title, path, text),
        )
        for ordinal, (path, page, text, tokens) in enumerate(passages)
    ]


# --- merging tiny sections -------------------------------------------------------------


def _joins_group(
    group: list[tuple[Section, int]], section: Section, tokens: int, target: int
) -> bool:
    """Same page, fits the target, and every path at most one level below the shared prefix."""
    if not group or group[0][0].page != section.page:
        return False
    if sum(size for _, size in group) + tokens > target:
        return False
    paths = [member.heading_path for member, _ in group] + [section.heading_path]
    prefix = _common_prefix(paths)
    return all(len(path) - len(prefix) <= 1 for path in paths)


def _merge(group: list[tuple[Section, int]], count: _Counter) -> list[_Passage]:
    """One passage under the shared heading path; each member's own heading opens its part."""
    if not group:
        return []
    if len(group) == 1:
        section, tokens = group[0]
        return [(section.heading_path, section.page, section.text.strip(), tokens)]
    prefix = _common_prefix([section.heading_path for section, _ in group])
    parts = []
    total = 0
    for section, tokens in group:
        own = section.heading_path[len(prefix) :]
        parts.append("\n".join([*own, section.text.strip()]))
        total += tokens + (sum(count(heading) for heading in own) if count.additive else 0)
    return [(prefix, group[0][0].page, "\n\n".join(parts), total)]


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    prefix = paths[0]
    for path in paths[1:]:
        length = 0
        while length < min(len(prefix), len(path)) and prefix[length] == path[length]:
            length += 1
        prefix = prefix[:length]
    return prefix


# --- splitting one section into units ----------------------------------------------------


def _section_units(blocks: list[str], limit: int, count: _Counter) -> list[_Unit]:
    units: list[_Unit] = []
    for block in blocks:
        tokens = count(block)
        if tokens <= limit:
            units.append(_Unit(block, tokens, "\n\n", prose=_is_prose(block)))
        elif FENCE.match(block):
            units.extend(_code_units(block, limit, count))
        else:
            units.extend(_split_block(block, limit, count))
    return units


def _is_prose(block: str) -> bool:
    return not FENCE.match(block) and not _is_line_oriented(block)


def _is_line_oriented(block: str) -> bool:
    """Tables ('a | b' rows) and lists split between lines, not sentences."""
    lines = block.split("\n")
    marked = sum(1 for line in lines if " | " in line or line.lstrip().startswith(("- ", "* ")))
    return len(lines) > 1 and marked * 2 >= len(lines)


def _split_block(block: str, limit: int, count: _Counter) -> list[_Unit]:
    if _is_line_oriented(block):
        pieces, sep, prose = block.split("\n"), "\n", False
    else:
        pieces, sep, prose = SENTENCE_END.split(block), " ", True
    units = []
    for piece in pieces:
        for part in _fit(piece, limit, count):
            units.append(_Unit(part, count(part), sep, prose))
    return _first_opens_block(units)


def _code_units(block: str, limit: int, count: _Counter) -> list[_Unit]:
    """Split an oversized code block between lines; every piece is re-fenced to stay valid."""
    lines = block.split("\n")
    opening = lines[0]
    fence = FENCE.match(opening).group(1)  # type: ignore[union-attr] - caller checked
    body = lines[1:-1] if len(lines) > 1 and lines[-1].strip().startswith(fence) else lines[1:]
    budget = max(1, limit - 2 * count(fence))
    units = []
    for piece in _pack_lines(body, budget, count):
        text = f"{opening}\n{piece}\n{fence}"
        units.append(_Unit(text, count(text), "\n\n", prose=False))
    return units


def _pack_lines(lines: list[str], budget: int, count: _Counter) -> Iterable[str]:
    current: list[str] = []
    size = 0
    for line in lines:
        for part in _fit(line, budget, count):
            tokens = count(part)
            if current and size + tokens > budget:
                yield "\n".join(current)
                current, size = [], 0
            current.append(part)
            size += tokens
    if current:
        yield "\n".join(current)


def _fit(text: str, limit: int, count: _Counter) -> list[str]:
    """Cut a piece that is still too long at spaces, and a single giant word by characters."""
    if count(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    size = 0  # count(current), kept up to date when the counter is additive
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        tokens = size + count(word) if count.additive else count(candidate)
        if tokens <= limit:
            current, size = candidate, tokens
            continue
        if current:
            parts.append(current)
        if count(word) <= limit:
            current, size = word, count(word)
        else:  # every counter here spends at most one token per character
            parts.extend(word[i : i + limit] for i in range(0, len(word), limit))
            current, size = "", 0
    if current:
        parts.append(current)
    return parts


def _first_opens_block(units: list[_Unit]) -> list[_Unit]:
    if units:
        first = units[0]
        units[0] = _Unit(first.text, first.tokens, "\n\n", first.prose)
    return units


# --- packing units into chunks -----------------------------------------------------------


def _pack(units: list[_Unit], target: int, overlap: int, count: _Counter) -> list[tuple[str, int]]:
    """Chunk texts, each with the sum of its units' tokens."""
    chunks: list[tuple[str, int]] = []
    current: list[_Unit] = []
    size = 0
    fresh = 0  # tokens in `current` that are not overlap
    for unit in units:
        if fresh and size + unit.tokens > target:
            chunks.append((_join(current), size))
            current = _overlap(current[-1], overlap, count)
            size = sum(item.tokens for item in current)
            fresh = 0
        current.append(unit)
        size += unit.tokens
        fresh += unit.tokens
    if fresh:
        chunks.append((_join(current), size))
    return chunks


def _overlap(last: _Unit, budget: int, count: _Counter) -> list[_Unit]:
    """The trailing sentences of the previous chunk's last unit, up to `budget` tokens."""
    if not budget or not last.prose:
        return []
    taken: list[str] = []
    size = 0
    for sentence in reversed(SENTENCE_END.split(last.text)):
        tokens = count(sentence)
        if size + tokens > budget:
            break
        taken.insert(0, sentence)
        size += tokens
    if not taken:
        return []
    text = " ".join(taken)
    return [_Unit(text, size if count.additive else count(text), "\n\n", prose=True)]


def _join(units: list[_Unit]) -> str:
    text = units[0].text
    for unit in units[1:]:
        text += unit.sep + unit.text
    return text.strip()


def _embed_text(title: str, path: tuple[str, ...], text: str) -> str:
    """'Title > Heading > Subheading' then the passage, skipping a heading that repeats the title."""
    trail = list(path[1:] if path and path[0].casefold() == title.casefold() else path)
    header = " > ".join(part for part in [title, *trail] if part)
    return f"{header}\n\n{text}" if header else text
