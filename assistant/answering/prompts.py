"""Prompt building: template files, numbered sources, and a token budget."""

from __future__ import annotations

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
                "n": n, "chunk_id": hit.chunk_id, "source_id": hit.source_id,
                "collection_id": hit.collection_id, "title": hit.document_title,
                "source_name": hit.source_name, "url": hit.source_url,
                "heading": hit.heading, "page": hit.page, "text": text,
                "_before": hit.before, "_after": hit.after,
            }
        )
    # Widen passages with their neighbours, best first, with whatever budget is left.
    for source in sources:
        extra = count_tokens(source["_before"]) + count_tokens(source["_after"])
        if used + extra <= budget_tokens:
            used += extra
            source["context"] = "\n".join(p for p in (source["_before"], source["text"], source["_after"]) if p)
    for source in sources:
        source.pop("_before")
        source.pop("_after")
    return sources


def public_sources(sources: list[dict]) -> list[dict]:
    """What the user's screen gets: the passage itself, not the prompt's widened context."""
    return [{k: v for k, v in s.items() if k != "context"} for s in sources]


def build_messages(
    *, question: str, sources: list[dict], history: list[ChatMessage], user_name: str = "",
    memory: list[str] = (),
) -> list[ChatMessage]:
    prompt_sources = [{**s, "text": s.get("context", s["text"])} for s in sources]
    system = render_to_string(
        "prompts/system.txt", {"sources": prompt_sources, "user_name": user_name, "memory": memory}
    )
    return [ChatMessage("system", system.strip()), *history, ChatMessage("user", question)]


def nothing_found_text() -> str:
    return render_to_string("prompts/nothing_found.txt").strip()


def trim_history(turns: list[ChatMessage], budget_tokens: int) -> list[ChatMessage]:
    """Keeps the conversation's summary (a leading system turn) and the most recent turns that fit."""
    pinned = [t for t in turns[:1] if t.role == "system"]
    used = sum(count_tokens(t.content) + 4 for t in pinned)
    kept: list[ChatMessage] = []
    for turn in reversed(turns[len(pinned):]):
        cost = count_tokens(turn.content) + 4
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    return pinned + list(reversed(kept))
