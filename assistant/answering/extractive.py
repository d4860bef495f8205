"""The answer given when no model could write one: the best passages, quoted.

When every model attempt failed before its first token (retries, then the fallback model),
the person still asked a question we found passages for. Quoting the most relevant of them,
each with the ``[n]`` marker of its number, answers far better than an error: the markers
resolve to the same citations a model's answer would have, so the chips, the sources list and
Slack's source links work unchanged. Only passages retrieved for the asker are quoted, so the
answer respects access exactly as a normal one does.

Pure: text in, text out, no Django, so the quoting rules are tested on their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Stored as the answer's ``model``: it names what wrote the answer, and marks it for the UI,
# the answer cache (which never keeps one) and the conversation API.
MODEL = "extractive"

PASSAGES = 3  # quoting more buries the best one; the sources list names every passage found
PASSAGE_CHARS = 600  # about a paragraph: enough to answer, short enough to scan

INTRO = (
    "The language model isn't available right now, so I couldn't write an answer for you. "
    "These are the passages I found that look most relevant to your question:"
)

_WHITESPACE = re.compile(r"\s+")
_FENCE = re.compile(r"`{3,}|~{3,}")
# A bracketed number inside a quoted passage is the document's own reference (a paper's
# "[3]"), not one of our markers.
_BRACKETED_NUMBER = re.compile(r"\[(\d{1,3}(?: *, *\d{1,3})*)\]")


UNAVAILABLE = "(This passage is no longer available to you.)"

_QUOTE_LINE = re.compile(r"> \[(\d{1,3})\] ")


def is_extractive(model: str) -> bool:
    return model == MODEL


def visible_content(model: str, content: str, sources: Sequence[dict]) -> str:
    """The answer's text as its reader may see it now.

    An extractive answer is nothing but its passages, word for word, so a quote of a passage
    the reader can no longer read (``sources`` marks it ``unavailable``, as the conversation
    API does) gives way to a note, keeping its number. Any other answer is returned as is.
    """
    if not is_extractive(model):
        return content
    gone = {s.get("n") for s in sources if isinstance(s, dict) and s.get("unavailable")}
    if not gone:
        return content
    paragraphs = content.split("\n\n")  # each quote is one paragraph (``quote`` flattens it)
    for index, paragraph in enumerate(paragraphs):
        match = _QUOTE_LINE.match(paragraph)
        if match and int(match.group(1)) in gone:
            paragraphs[index] = f"> [{match.group(1)}] {UNAVAILABLE}"
    return "\n\n".join(paragraphs)


def quote(text: str, limit: int = PASSAGE_CHARS) -> str:
    """One passage as one line of plain quoted text, at most ``limit`` characters.

    The passage becomes a single line so nothing in it (a heading, a list, a table) can
    change the shape of the answer around it; code fences are dropped because one cut open
    at the passage's end would swallow everything after it; the document's own bracketed
    numbers become parenthesised, because a markdown escape would still reach the page as
    "[3]" and turn into a chip for our passage 3.
    """
    flat = _WHITESPACE.sub(" ", _FENCE.sub(" ", text)).strip()
    if len(flat) > limit:
        cut = flat[:limit]
        if " " in cut:
            cut = cut[: cut.rindex(" ")]
        flat = cut.rstrip(" ,;:.") + "…"
    return _BRACKETED_NUMBER.sub(r"(\1)", flat)


def answer_text(sources: Sequence[dict], passages: int = PASSAGES) -> str:
    """The extractive answer over ``sources`` (numbered, best first), or "" with none.

    Each passage is a quoted paragraph that starts with its marker: a marker at the start of
    the line cannot be swallowed by an inline code span the passage leaves open.
    """
    quoted = [
        f"> [{source['n']}] {quote(source['text'])}"
        for source in list(sources)[:passages]
        if quote(source.get("text") or "")
    ]
    if not quoted:
        return ""
    return "\n\n".join([INTRO, *quoted])
