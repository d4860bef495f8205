"""Per-user long-term memory, the writes: what a person asked the assistant to remember or to
forget, and their own edits on the memory page. Near-duplicates and contradictions update the
existing item instead of piling up. Every write is scoped to its owner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection, transaction
from pgvector.django import CosineDistance

from assistant.models import MemoryItem, MemorySettings, Message
from knowledge.embeddings import get_embedder

MAX_ITEM_CHARS = 300
MAX_ITEMS_PER_USER = 200
SAME_TOPIC_SIMILARITY = (
    0.72  # this close is the same subject: the newer statement replaces the older
)

_REMEMBER = re.compile(
    r"^\s*(?:please\s+)?remember(?:\s+that)?[\s,:]+(?P<body>.+)$", re.IGNORECASE | re.DOTALL
)
_FORGET = re.compile(
    r"^\s*(?:please\s+)?forget(?:\s+that|\s+about)?[\s,:]+(?P<body>.+)$", re.IGNORECASE | re.DOTALL
)


class MemoryRefused(Exception):
    """A refusal the user can act on."""


@dataclass(frozen=True)
class Command:
    action: str  # "remember" or "forget"
    text: str


def parse_command(text: str) -> Command | None:
    for action, pattern in (("remember", _REMEMBER), ("forget", _FORGET)):
        match = pattern.match(text)
        if match:
            body = match.group("body").strip().rstrip(".!")
            if body:
                return Command(action, body)
    return None


def _clean(text: str) -> str:
    text = " ".join(str(text).split())
    if not text:
        raise MemoryRefused("There is nothing to remember.")
    if len(text) > MAX_ITEM_CHARS:
        raise MemoryRefused(f"A memory can be at most {MAX_ITEM_CHARS} characters.")
    return text


@transaction.atomic
def remember(*, user, text: str, source_message: Message | None = None) -> MemoryItem:
    """Stores a fact, refreshing or replacing an item about the same thing instead of repeating it."""
    text = _clean(text)
    vector = get_embedder().embed_documents([text])[0]
    closest = (
        MemoryItem.objects.select_for_update()
        .filter(owner=user)
        .annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance")
        .first()
    )
    if closest is not None and 1 - closest.distance >= SAME_TOPIC_SIMILARITY:
        closest.text, closest.embedding, closest.source_message = text, vector, source_message
        closest.save(update_fields=["text", "embedding", "source_message", "updated_at"])
        return closest
    if MemoryItem.objects.filter(owner=user).count() >= MAX_ITEMS_PER_USER:
        oldest = MemoryItem.objects.filter(owner=user).order_by("updated_at").first()
        oldest.delete()
    return MemoryItem.objects.create(
        owner=user, text=text, embedding=vector, source_message=source_message
    )


def forget(*, user, text: str) -> list[str]:
    """Deletes the user's items that the words refer to; returns what was forgotten."""
    vector = get_embedder().embed_query(text)
    candidates = (
        MemoryItem.objects.filter(owner=user)
        .annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance")[:5]
    )
    needle = text.lower()
    doomed = [i for i in candidates if 1 - i.distance >= 0.55 or needle in i.text.lower()]
    forgotten = [i.text for i in doomed]
    MemoryItem.objects.filter(owner=user, pk__in=[i.pk for i in doomed]).delete()
    return forgotten


def reembed_all(*, embedder, old_dimensions: int, **kwargs) -> int:
    """After an embedding model change (``manage.py reindex``): every user's items get vectors
    from the new model, the column resized first when the dimension changed. Returns the count."""
    items = list(MemoryItem.objects.order_by("pk").only("pk", "text"))
    if embedder.dimensions != old_dimensions:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE assistant_memoryitem ALTER COLUMN embedding DROP NOT NULL")
            cursor.execute(
                f"ALTER TABLE assistant_memoryitem ALTER COLUMN embedding "
                f"TYPE vector({int(embedder.dimensions)}) USING NULL"
            )
    for start in range(0, len(items), 64):
        batch = items[start : start + 64]
        vectors = embedder.embed_documents([item.text for item in batch])
        # Raw SQL: bulk_update would cast to the model's declared vector(384).
        with connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE assistant_memoryitem SET embedding = %s::vector WHERE id = %s",
                [(_vector_text(v), item.pk) for item, v in zip(batch, vectors, strict=True)],
            )
    if embedder.dimensions != old_dimensions:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE assistant_memoryitem ALTER COLUMN embedding SET NOT NULL")
    return len(items)


def _vector_text(vector) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def item_update(*, user, item_id: int, text: str) -> MemoryItem:
    item = MemoryItem.objects.get(owner=user, pk=item_id)
    item.text = _clean(text)
    item.embedding = get_embedder().embed_documents([item.text])[0]
    item.save(update_fields=["text", "embedding", "updated_at"])
    return item


def item_delete(*, user, item_id: int) -> None:
    MemoryItem.objects.get(owner=user, pk=item_id).delete()


def delete_all(*, user) -> int:
    return MemoryItem.objects.filter(owner=user).delete()[0]


def set_paused(*, user, paused: bool) -> None:
    MemorySettings.objects.update_or_create(user=user, defaults={"paused": paused})
