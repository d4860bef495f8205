"""Per-user long-term memory, the reads. Every one is filtered by owner: one person's memory
never reaches another.
"""

from __future__ import annotations

from django.conf import settings
from pgvector.django import CosineDistance

from assistant import llm
from assistant.models import MemoryItem, MemorySettings
from knowledge import embeddings

# Preferences go with every answer, so they are capped: a handful, and a bounded share of the
# prompt (an item is at most 300 characters; three fill a short paragraph).
PREFERENCES_IN_PROMPT = 3
PREFERENCE_CHARS_IN_PROMPT = 600


def is_enabled(user) -> bool:
    return not MemorySettings.objects.filter(user=user, paused=True).exists()


def auto_learn_default() -> bool:
    """The site's default for learning after each answer (and summarising long conversations).

    ``MEMORY_AUTO_LEARN`` decides when set. Unset, it is off for the embedded local model:
    that server answers one request at a time on the same cores, so an extraction queued
    behind an answer delays the next person's first token by tens of seconds (and replaces
    the system prompt prefix llama.cpp keeps cached); and a small model copies its prompt's
    examples as facts. An external endpoint has neither cost.
    """
    if settings.MEMORY_AUTO_LEARN is not None:
        return settings.MEMORY_AUTO_LEARN
    base_url = (settings.OPENAI_BASE_URL or llm.DEFAULT_BASE_URL).rstrip("/")
    embedded = {llm.DEFAULT_BASE_URL, settings.EMBEDDED_LLM_BASE_URL.rstrip("/")}
    return base_url not in embedded


def auto_learn_for(user) -> bool:
    """Whether the assistant learns from this person's messages: their own choice on the memory
    page, else the site's default; never while their memory is paused."""
    row = MemorySettings.objects.filter(user=user).values("paused", "auto_learn").first() or {}
    if row.get("paused"):
        return False
    chosen = row.get("auto_learn")
    return auto_learn_default() if chosen is None else chosen


def items_of(user):
    # With the message each came from, so the page can quote it and link to it.
    return MemoryItem.objects.filter(owner=user).defer("embedding").select_related("source_message")


def item_of(*, user, item_id: int) -> MemoryItem:
    """The person's own item; ``DoesNotExist`` for a missing one and for anyone else's alike."""
    return items_of(user).get(pk=item_id)


def preferences_for_answer(*, user) -> list[MemoryItem]:
    """How this person wants answers, newest first, within the caps: sent with every answer."""
    if not is_enabled(user):
        return []
    chosen, chars = [], 0
    recent = items_of(user).filter(kind=MemoryItem.Kind.PREFERENCE).order_by("-updated_at")
    for item in recent[:PREFERENCES_IN_PROMPT]:
        if chars + len(item.text) > PREFERENCE_CHARS_IN_PROMPT:
            break
        chosen.append(item)
        chars += len(item.text)
    return chosen


def items_for_answer(*, user, query: str, limit: int, query_vector=None) -> list[MemoryItem]:
    """What an answer to ``query`` gets from this person's memory: every preference (capped),
    then up to ``limit`` facts by relevance. Their own items only."""
    preferences = preferences_for_answer(user=user)
    facts = relevant_items(
        user=user,
        query=query,
        limit=limit,
        query_vector=query_vector,
        kind=MemoryItem.Kind.FACT,
    )
    return preferences + facts


def relevant_items(
    *,
    user,
    query: str,
    limit: int = 5,
    min_similarity: float = 0.25,
    query_vector=None,
    kind: str | None = None,
) -> list[MemoryItem]:
    """This user's items closest to the query (never anyone else's), of one ``kind`` or all.
    ``query_vector``: the query already embedded (by retrieval), to avoid embedding it twice."""
    mine = MemoryItem.objects.filter(owner=user)
    if kind is not None:
        mine = mine.filter(kind=kind)
    if limit <= 0 or not is_enabled(user) or not mine.exists():
        return []
    vector = query_vector if query_vector is not None else embeddings.embed_query(query)
    items = (
        mine.annotate(distance=CosineDistance("embedding", vector))
        .filter(distance__lte=1 - min_similarity)
        .order_by("distance")[:limit]
    )
    return list(items)
