"""Every citation checked: is each sentence carrying ``[n]`` supported by passage n?

Pure code (no Django): answer text and numbered passages in, small dataclasses out. The
embedder is passed in (anything with ``embed_documents(texts) -> list[vector]`` returning unit
vectors, e.g. ``knowledge.embeddings.get_embedder()``), so tests run it without a database.

A cited sentence is supported by passage n when both hold:

* **Hard facts are in the passage.** Every number (``14``, ``3.5``, ``1,000``), identifier
  (``select_for_update``, ``QuerySet``, ``SECURE_HSTS_SECONDS``, anything in backticks) and
  quoted name (``"Travel desk"``) of the sentence appears in the passage. A small model that
  gets one digit wrong writes an otherwise perfect paraphrase; only this check catches it.
* **Its content is close to one of the passage's sentences**: the cosine of their embeddings
  is high, or moderate with most of the sentence's content words found in the passage.

A sentence citing several passages (``[1][2]`` or ``[1, 2]``) is supported when any of them
supports it. Sentences with no content words ("See [1].") are supported. The check is bounded
whatever the answer: at most :data:`MAX_CLAIMS` cited sentences and :data:`MAX_TEXTS` texts
embedded, in one ``embed_documents`` call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

MAX_CLAIMS = 40  # cited sentences checked per answer; later ones are left unchecked
MAX_SENTENCE_CHARS = 600  # longer sentences are checked on their start
MAX_PASSAGE_CHARS = 20_000
MAX_CANDIDATES = 4  # passage sentences compared by embedding, per (sentence, passage)
MAX_TEXTS = 200  # texts in the one embedding batch

# Calibrated on paraphrases and wrong-passage citations with all-MiniLM-L6-v2
# (tests/assistant/test_grounding.py): same-fact paraphrases score 0.6-0.9, a sentence next
# to an unrelated passage of the same document 0.1-0.45.
SIMILAR = 0.62
SIMILAR_WITH_WORDS = 0.45
WORDS_WITH_SIMILAR = 0.5
WORDS_ALONE = 0.85

_MARKER_RE = re.compile(r"\[(\d{1,3}(?: *, *\d{1,3})*)\](?!\()")
_FENCE_RE = re.compile(r"(`{3,})[^\n]*\n.*?(?:\n\1`*[ \t]*(?=\n|$)|\Z)", re.DOTALL)
_INLINE_CODE_RE = re.compile(r"(`{1,2})([^`\n]+?)\1")
_LIST_ITEM_RE = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_BLOCK_START_RE = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)]|#{1,6}|>|\|)(?:[ \t]|$)")
# A sentence ends at . ! ? … (plus closing quotes/brackets and any markers right after) when
# whitespace follows. Whether that is really an end is decided in _is_boundary.
_END_RE = re.compile(r"[.!?…]+[\"'”’)\]]*(?:[ \t]*\[\d{1,3}(?: *, *\d{1,3})*\])*(?=\s|$)")
_ABBREVIATION_TEXT = (
    "e.g i.e etc vs cf al approx dr mr mrs ms prof st no nos fig figs inc ltd co jr sr esp "
    "resp incl min max sec ca vol p pp ch eq"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
_NEXT_WORD_RE = re.compile(r"[ \t]*(\S+)")
_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?![\w])")
_QUOTED_RE = re.compile(r"\"([^\"\n]{2,120})\"|“([^”\n]{2,120})”|(?<!\w)'([^'\n]{2,80})'(?!\w)")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:\(\))?")
_TOKEN_RE = re.compile(r"[a-z0-9]+")

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
}  # fmt: skip
_STOPWORD_TEXT = """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either else few for from further get gets got had has have having he her here hers him his
    how however i if in into is it its itself just may me might more most must my no nor not
    now of off on once only or other our ours out over own per same she should so some such
    than that the their theirs them then there these they this those through thus to too
    under until up upon us use used uses using very via was we were what when where which
    while who whom why will with within without would yes yet you your yours one ones also
    can't don't doesn't isn't aren't won't cannot source sources passage according says
    said see refer note details information more"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class Embedder(Protocol):
    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class CitedSentence:
    """A sentence of the answer and the passage numbers it cites."""

    text: str  # as written, markers included
    claim: str  # what it states: markers and markdown decoration removed
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class Verdict:
    sentence: str  # the claim (markers removed)
    numbers: tuple[int, ...]
    supported: bool
    reason: str = ""  # why not, for people: "says 14, not found in source 1"
    similarity: float | None = None  # best cosine against the cited passages' sentences

    def as_dict(self) -> dict:
        """The stored / sent form of an unsupported sentence."""
        return {"sentence": self.sentence, "numbers": list(self.numbers), "reason": self.reason}


@dataclass(frozen=True)
class GroundingReport:
    verdicts: list[Verdict] = field(default_factory=list)
    unchecked: int = 0  # cited sentences past MAX_CLAIMS

    @property
    def unsupported(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.supported]


# --- sentences --------------------------------------------------------------------------------


def _mask_code(text: str) -> str:
    """The text with code replaced by ``x`` (same length), so nothing inside code splits a
    sentence or counts as a marker."""
    masked = _FENCE_RE.sub(lambda m: re.sub(r"[^\n]", "x", m.group(0)), text)
    masked = _INLINE_CODE_RE.sub(lambda m: "x" * len(m.group(0)), masked)
    return masked


def _blocks(text: str, masked: str) -> list[tuple[int, int]]:
    """(start, end) of paragraphs, list items, headings and fenced code blocks."""
    spans, start, offset = [], 0, 0
    for line in masked.splitlines(keepends=True):
        stripped = line.strip()
        if offset > start and (not stripped or _BLOCK_START_RE.match(line)):
            spans.append((start, offset))
            start = offset
        offset += len(line)
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _is_boundary(masked: str, start: int, end_match: re.Match) -> bool:
    before = masked[max(start, end_match.start() - 40) : end_match.start()]  # a word, not more
    word = re.search(r"([A-Za-z][A-Za-z.]*)$", before)
    if end_match.group(0).startswith("."):
        if word and word.group(1).lower().rstrip(".") in _ABBREVIATIONS:
            return False
        if word and len(word.group(1)) == 1 and word.group(1).isupper():
            return False  # an initial: "J. Smith"
    if "[" in end_match.group(0):
        return True  # markers after the full stop close a cited sentence
    # Before a lowercase word ("e.g. this", an unknown abbreviation) the sentence goes on,
    # unless that word is an identifier starting the next sentence ("skip_locked=True ...").
    following = _NEXT_WORD_RE.match(masked, end_match.end())
    return not (
        following
        and following.group(1)[:1].islower()
        and not re.search(r"[_.(=]", following.group(1))
    )


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of ``text``.

    Paragraphs, list items and headings always end a sentence; inside them a sentence ends at
    . ! ? followed by space, except after abbreviations and initials, before a lowercase word,
    and inside decimals ("3.5") or code. Markers right after the full stop ("fast. [1]") stay
    with their sentence. Code blocks are sentences of their own, never split.
    """
    masked = _mask_code(text)
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _blocks(text, masked):
        item = _LIST_ITEM_RE.match(masked[block_start:block_end])
        start = block_start + item.end() if item else block_start
        for match in _END_RE.finditer(masked, start, block_end):
            if _is_boundary(masked, start, match):
                spans.append((start, match.end()))
                start = match.end()
        spans.append((start, block_end))
    trimmed = [
        (s + len(text[s:e]) - len(text[s:e].lstrip()), s + len(text[s:e].rstrip()))
        for s, e in spans
    ]
    return [(s, e) for s, e in trimmed if s < e]


def cited_sentences(text: str, valid_numbers: Sequence[int] | None = None) -> list[CitedSentence]:
    """The sentences of ``text`` that carry at least one marker (of ``valid_numbers`` if given)."""
    valid = None if valid_numbers is None else set(valid_numbers)
    masked = _mask_code(text)
    found = []
    for start, end in split_sentences(text):
        numbers: list[int] = []
        for match in _MARKER_RE.finditer(masked, start, end):
            numbers.extend(int(n) for n in re.findall(r"\d+", match.group(1)))
        numbers = [n for n in dict.fromkeys(numbers) if valid is None or n in valid]
        if not numbers:
            continue
        sentence = text[start:end].strip()
        found.append(CitedSentence(sentence, _claim(sentence), tuple(numbers)))
    return found


def _claim(sentence: str) -> str:
    masked = _mask_code(sentence)
    parts, last = [], 0
    for match in _MARKER_RE.finditer(masked):
        parts.append(sentence[last : match.start()])
        last = match.end()
    parts.append(sentence[last:])
    claim = "".join(parts)
    claim = re.sub(r"(\*\*|__)(.+?)\1", r"\2", claim)  # bold
    claim = re.sub(r"^\s*(?:#{1,6}|>|[-*+•]|\d{1,3}[.)])\s+", "", claim)
    claim = re.sub(r"[ \t]+([.,;:!?])", r"\1", claim)
    return " ".join(claim.split())


# --- facts that must be in the passage ----------------------------------------------------------


def _normal_number(raw: str) -> str:
    value = raw.lstrip("+").replace(",", "") if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+", raw) else raw
    value = value.lstrip("+")
    if re.fullmatch(r"-?\d+\.0+", value):
        value = value.split(".")[0]
    return value


def _numbers(text: str) -> set[str]:
    return {_normal_number(n) for n in _NUMBER_RE.findall(text)}


def _claim_numbers(claim: str) -> set[str]:
    """The digits of a claim. Counts written in words are not demanded: "two weeks ahead" is a
    fair paraphrase of "fourteen days before", and no unit arithmetic is attempted."""
    return _numbers(_INLINE_CODE_RE.sub(" ", claim))


def _passage_numbers(text: str) -> set[str]:
    numbers = _numbers(text)
    numbers.update(str(v) for w, v in _NUMBER_WORDS.items() if re.search(rf"\b{w}\b", text, re.I))
    return numbers


def _looks_like_identifier(word: str) -> bool:
    core = word.removesuffix("()")
    return bool(
        word.endswith("()")
        or "_" in core.strip("_")
        or "." in core
        or re.search(r"[a-z][A-Z]", core)  # camelCase, QuerySet
        or re.fullmatch(r"[A-Z][A-Z0-9]*\d[A-Z0-9]*", core)  # UTF8, S3
    )


def _identifiers(claim: str) -> set[str]:
    found = set()
    for match in _INLINE_CODE_RE.finditer(claim):
        for token in match.group(2).split():
            token = token.strip(".,;:()[]{}'\"")
            if re.search(r"[A-Za-z0-9]", token) and not re.fullmatch(r"[%{}<>=/\\-]+", token):
                found.add(token.removesuffix("()"))
    prose = _INLINE_CODE_RE.sub(" ", claim)
    for match in _WORD_RE.finditer(prose):
        word = match.group(0)
        if _looks_like_identifier(word):
            found.add(word.removesuffix("()").rstrip("."))
    return {f for f in found if f}


def _named_in(identifier: str, squashed_passage: str) -> bool:
    """A dotted name counts when the passage names its last part: the docs write
    ``on_commit()`` next to ``from django.db import transaction``, the answer
    ``transaction.on_commit()``."""
    if identifier.lower() in squashed_passage:
        return True
    last = identifier.rsplit(".", 1)[-1].lower()
    return "." in identifier and len(last) >= 3 and last in squashed_passage


def _quoted(claim: str) -> set[str]:
    return {" ".join(next(g for g in m.groups() if g).split()) for m in _QUOTED_RE.finditer(claim)}


def _squash(text: str) -> str:
    return " ".join(text.lower().replace("`", "").split())


def _missing_fact(claim: str, passage: str, squashed_passage: str, numbers: set[str]) -> str:
    """Why the passage cannot support the claim's hard facts, or "" if it can."""
    for number in sorted(_claim_numbers(claim)):
        if number not in numbers:
            return f"says {number}"
    for identifier in sorted(_identifiers(claim)):
        if not _named_in(identifier, squashed_passage):
            return f"names {identifier}"
    for quote in sorted(_quoted(claim)):
        if _squash(quote) not in squashed_passage:
            return f'quotes "{quote}"'
    return ""


# --- content ------------------------------------------------------------------------------------


def _stem(token: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(token) > len(suffix) + 3 and token.endswith(suffix):
            return token[: -len(suffix)]
    return token


def _content_words(text: str) -> set[str]:
    return {
        _stem(t)
        for t in _TOKEN_RE.findall(text.lower())
        if t not in _STOPWORDS and (len(t) > 2 or t.isdigit())
    }


def _overlap(words: set[str], other: set[str]) -> float:
    return len(words & other) / len(words) if words else 1.0


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    # Embedders return unit vectors; normalise anyway so a backend that does not stays correct.
    dot = math.fsum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norm if norm else 0.0


@dataclass
class _Passage:
    text: str
    squashed: str
    numbers: set[str]
    words: set[str]
    sentences: list[str]
    sentence_words: list[set[str]]


def _passage(text: str) -> _Passage:
    text = text[:MAX_PASSAGE_CHARS]
    sentences = [" ".join(text[s:e].split())[:MAX_SENTENCE_CHARS] for s, e in split_sentences(text)]
    sentences = [s for s in sentences if _content_words(s)]
    return _Passage(
        text=text,
        squashed=_squash(text),
        numbers=_passage_numbers(text),
        words=_content_words(text),
        sentences=sentences,
        sentence_words=[_content_words(s) for s in sentences],
    )


def check_answer(
    text: str,
    passages: Mapping[int, str],
    embedder: Embedder | Callable[[Sequence[str]], list[list[float]]],
) -> GroundingReport:
    """Checks every cited sentence of ``text`` against the passages it cites.

    ``passages`` maps a marker number to the passage text the model was given. Markers of
    numbers not in ``passages`` are ignored (the pipeline drops them before this runs).
    """
    embed = embedder.embed_documents if hasattr(embedder, "embed_documents") else embedder
    claims = cited_sentences(text, list(passages))
    unchecked = max(0, len(claims) - MAX_CLAIMS)
    claims = claims[:MAX_CLAIMS]
    parsed: dict[int, _Passage] = {}
    pending: list[tuple[CitedSentence, set[str], dict[int, str], list[tuple[int, list[int]]]]] = []
    texts: dict[str, int] = {}

    def slot(value: str) -> int:
        if value not in texts and len(texts) < MAX_TEXTS:
            texts[value] = len(texts)
        return texts.get(value, -1)

    verdicts: list[Verdict | None] = []
    for claim in claims:
        sentence = claim.claim[:MAX_SENTENCE_CHARS]
        words = _content_words(_INLINE_CODE_RE.sub(" ", sentence))
        reasons: dict[int, str] = {}
        candidates: list[tuple[int, list[int]]] = []
        for n in claim.numbers:
            passage = parsed.setdefault(n, _passage(passages[n]))
            missing = _missing_fact(sentence, passage.text, passage.squashed, passage.numbers)
            if missing:
                reasons[n] = missing
                continue
            if not words:
                break  # nothing to compare beyond its facts: supported
            ranked = sorted(
                range(len(passage.sentences)),
                key=lambda i, p=passage: -_overlap(words, p.sentence_words[i]),
            )[:MAX_CANDIDATES]
            candidates.append((n, [slot(passage.sentences[i]) for i in ranked]))
        else:
            if candidates:
                pending.append((claim, words, reasons, candidates))
                verdicts.append(None)
                slot(sentence)
                continue
            if reasons:
                verdicts.append(_unsupported(claim, reasons))
                continue
        verdicts.append(Verdict(claim.claim, claim.numbers, True))

    vectors = embed(list(texts)) if pending and texts else []
    resolved = iter(
        _judge(claim, words, reasons, candidates, parsed, texts, vectors)
        for claim, words, reasons, candidates in pending
    )
    return GroundingReport(
        verdicts=[v if v is not None else next(resolved) for v in verdicts], unchecked=unchecked
    )


def _judge(claim, words, reasons, candidates, parsed, texts, vectors) -> Verdict:
    own = texts.get(claim.claim[:MAX_SENTENCE_CHARS], -1)
    best_overall: float | None = None
    for n, slots in candidates:
        overlap = _overlap(words, parsed[n].words)
        best = max(
            (_cosine(vectors[own], vectors[i]) for i in slots if i >= 0 and own >= 0),
            default=0.0,
        )
        best_overall = best if best_overall is None else max(best_overall, best)
        if (
            best >= SIMILAR
            or (best >= SIMILAR_WITH_WORDS and overlap >= WORDS_WITH_SIMILAR)
            or overlap >= WORDS_ALONE
        ):
            return Verdict(claim.claim, claim.numbers, True, similarity=best)
        reasons[n] = "not found"
    return _unsupported(claim, reasons, best_overall)


def _unsupported(claim: CitedSentence, reasons: dict[int, str], similarity=None) -> Verdict:
    parts = []
    for n in claim.numbers:
        why = reasons.get(n, "not found")
        parts.append(
            f"not found in source {n}" if why == "not found" else f"{why}, not found in source {n}"
        )
    return Verdict(claim.claim, claim.numbers, False, "; ".join(parts), similarity)
