"""Prompt building: template files, numbered sources, and a token budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.template.loader import get_template, render_to_string

from assistant.llm import ChatMessage, count_tokens
from knowledge.retrieval import SearchHit


@dataclass(frozen=True)
class Budget:
    """How the model's context is shared: the answer's reserve, the fixed rules, then 65% of
    what is left for the sources and 25% for history (the rest: the question and memory)."""

    context_tokens: int
    answer_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return max(256, self.context_tokens - self.answer_tokens)

    @property
    def variable_tokens(self) -> int:
        return max(128, self.prompt_tokens - fixed_prompt_tokens())

    @property
    def sources_tokens(self) -> int:
        return int(self.variable_tokens * 0.65)

    @property
    def history_tokens(self) -> int:
        return int(self.variable_tokens * 0.25)


SOURCE_HEADER_TOKENS = 20  # "[n] title — heading (page p)" and the line breaks around it


def template_source() -> str:
    """The system prompt's template as written (what the answer cache keys on)."""
    return get_template("prompts/system.txt").template.source


def fixed_prompt_tokens() -> int:
    """What the system prompt costs before any name, memory, context or source is added."""
    return count_tokens(_render_system(sources=[], user_name="", memory=[], thread_context=[]))


def number_sources(hits: list[SearchHit], budget_tokens: int) -> list[dict]:
    """Numbers the passages from 1, best first, adding neighbours while the budget allows.

    Everything stays within ``budget_tokens``: a first passage too long for it on its own is
    cut to fit (better part of the best passage than a prompt the model cannot take)."""
    sources, used = [], 0
    for n, hit in enumerate(hits, 1):
        text = hit.text
        cost = count_tokens(text) + SOURCE_HEADER_TOKENS
        if used + cost > budget_tokens:
            if sources:
                break
            text = _cut(text, budget_tokens - SOURCE_HEADER_TOKENS)
            cost = count_tokens(text) + SOURCE_HEADER_TOKENS
        used += cost
        sources.append(
            {
                "n": n,
                "chunk_id": hit.chunk_id,
                "source_id": hit.source_id,
                "collection_id": hit.collection_id,
                "title": hit.document_title,
                "source_name": hit.source_name,
                "url": hit.source_url,
                "heading": hit.heading,
                "page": hit.page,
                "text": text,
                "_before": hit.before,
                "_after": hit.after,
            }
        )
    # Widen passages with their neighbours, best first, with whatever budget is left. A
    # neighbour that is itself a source, or already another's neighbour, is not sent twice:
    # on a local model every repeated token is prompt time.
    sent = {source["text"] for source in sources}
    for source in sources:
        before, after = (p if p not in sent else "" for p in (source["_before"], source["_after"]))
        extra = count_tokens(before) + count_tokens(after)
        if used + extra <= budget_tokens:
            used += extra
            sent.update(p for p in (before, after) if p)
            source["context"] = "\n".join(p for p in (before, source["text"], after) if p)
    for source in sources:
        source.pop("_before")
        source.pop("_after")
    return sources


def _cut(text: str, tokens: int) -> str:
    """The longest start of ``text`` (ending at a word) that costs at most ``tokens``."""
    low, high = 0, len(text)
    while low < high:  # the longest prefix within the budget, by bisection on characters
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    if low < len(text) and " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip()


def public_sources(sources: list[dict]) -> list[dict]:
    """What the user's screen gets: the passage itself, not the prompt's widened context."""
    return [{k: v for k, v in s.items() if k != "context"} for s in sources]


def build_messages(
    *,
    question: str,
    sources: list[dict],
    history: list[ChatMessage],
    user_name: str = "",
    memory: list[str] = (),
    thread_context: Sequence[tuple[str, str]] = (),
) -> list[ChatMessage]:
    prompt_sources = [{**s, "text": s.get("context", s["text"])} for s in sources]
    system = _render_system(
        sources=prompt_sources,
        user_name=user_name,
        memory=memory,
        thread_context=list(thread_context),
    )
    return [ChatMessage("system", system), *history, ChatMessage("user", question)]


def _render_system(**context) -> str:
    """The system prompt: fixed rules and a citing example first, identical for every
    question and person, then what varies. llama.cpp reuses the longest prefix it has already
    read, so on a local model the rules cost prompt time once, not on every question."""
    return render_to_string("prompts/system.txt", context).strip()


def nothing_found_text() -> str:
    return render_to_string("prompts/nothing_found.txt").strip()


def trim_history(turns: list[ChatMessage], budget_tokens: int) -> list[ChatMessage]:
    """Keeps the conversation's summary (a leading system turn) and the most recent turns that fit."""
    pinned = [t for t in turns[:1] if t.role == "system"]
    used = sum(count_tokens(t.content) + 4 for t in pinned)
    kept: list[ChatMessage] = []
    for turn in reversed(turns[len(pinned) :]):
        cost = count_tokens(turn.content) + 4
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    return pinned + list(reversed(kept))


THREAD_MESSAGES_MAX = 50
THREAD_AUTHOR_CHARS = 80
THREAD_TEXT_CHARS = 2000


def clean_thread_context(thread_context: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Other people's messages as (author, text), each on one line.

    Whitespace is collapsed so a message cannot fake a new quoted line ("— Boss: ...") in the
    prompt; long ones are cut; only the most recent ``THREAD_MESSAGES_MAX`` are kept.
    Raises ``ValueError`` for anything that is not a sequence of (str, str) pairs.
    """
    if isinstance(thread_context, (str, bytes)) or not isinstance(thread_context, Sequence):
        raise ValueError("thread_context must be a sequence of (author, text) pairs.")
    cleaned = []
    for item in list(thread_context)[-THREAD_MESSAGES_MAX:]:
        if (
            not isinstance(item, (tuple, list))
            or len(item) != 2
            or not all(isinstance(v, str) for v in item)
        ):
            raise ValueError("thread_context must be a sequence of (author, text) pairs.")
        author = " ".join(item[0].split())[:THREAD_AUTHOR_CHARS] or "someone"
        text = " ".join(item[1].split())[:THREAD_TEXT_CHARS]
        if text:
            cleaned.append((author, text))
    return cleaned


def trim_thread_context(
    messages: list[tuple[str, str]], budget_tokens: int
) -> list[tuple[str, str]]:
    """The most recent quoted messages that fit the budget, oldest first."""
    kept, used = [], 0
    for author, text in reversed(messages):
        cost = count_tokens(text) + count_tokens(author) + 4
        if used + cost > budget_tokens:
            break
        kept.append((author, text))
        used += cost
    return list(reversed(kept))
