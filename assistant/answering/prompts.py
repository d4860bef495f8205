"""Prompt building: template files, numbered sources, and a token budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.template.loader import render_to_string

from assistant.llm import ChatMessage, count_tokens
from knowledge.retrieval import SearchHit


@dataclass(frozen=True)
class Budget:
    context_tokens: int
    answer_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return max(256, self.context_tokens - self.answer_tokens)

    @property
    def sources_tokens(self) -> int:
        return int(self.prompt_tokens * 0.65)

    @property
    def history_tokens(self) -> int:
        return int(self.prompt_tokens * 0.25)


def number_sources(hits: list[SearchHit], budget_tokens: int) -> list[dict]:
    """Numbers the passages from 1, best first, adding neighbours while the budget allows."""
    sources, used = [], 0
    for n, hit in enumerate(hits, 1):
        text = hit.text
        cost = count_tokens(text) + 20
        if sources and used + cost > budget_tokens:
            break
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
    # Widen passages with their neighbours, best first, with whatever budget is left.
    for source in sources:
        extra = count_tokens(source["_before"]) + count_tokens(source["_after"])
        if used + extra <= budget_tokens:
            used += extra
            source["context"] = "\n".join(
                p for p in (source["_before"], source["text"], source["_after"]) if p
            )
    for source in sources:
        source.pop("_before")
        source.pop("_after")
    return sources


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
    system = render_to_string(
        "prompts/system.txt",
        {
            "sources": prompt_sources,
            "user_name": user_name,
            "memory": memory,
            "thread_context": list(thread_context),
        },
    )
    return [ChatMessage("system", system.strip()), *history, ChatMessage("user", question)]


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
