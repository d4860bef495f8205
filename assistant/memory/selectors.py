"""Per-user long-term memory, the reads. Every one is filtered by owner: one person's memory
never reaches another.
"""

from __future__ import annotations

from pgvector.django import CosineDistance

from assistant.models import MemoryItem, MemorySettings
from knowledge import embeddings


def is_enabled(user) -> bool:
    return not MemorySettings.objects.filter(user=user, paused=True).exists()


def items_of(user):
    return MemoryItem.objects.filter(owner=user).defer("embedding")


def relevant_items(
    *, user, query: str, limit: int = 5, min_similarity: float = 0.25, query_vector=None
) -> list[MemoryItem]:
    """This user's items closest to the query (never anyone else's). ``query_vector``: the
    query already embedded (by retrieval), to avoid embedding it twice."""
    if not is_enabled(user) or not MemoryItem.objects.filter(owner=user).exists():
        return []
    vector = query_vector if query_vector is not None else embeddings.embed_query(query)
    items = (
        MemoryItem.objects.filter(owner=user)
        .annotate(distance=CosineDistance("embedding", vector))
        .filter(distance__lte=1 - min_similarity)
        .order_by("distance")[:limit]
    )
    return list(items)
