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


# A preference says how to answer (length, language, format, tone): it is sent with every
# answer, since a question is never similar to "I prefer short answers". A cheap rule on the
# words, measured on the examples in tests/assistant/test_memory_kinds.py; the person can change
# the kind on the memory page. Both parts are needed: a wish ("prefer", "always", "please", ...)
# and a word about answers, so "The user prefers vegetarian food" stays a fact.
_WISH = re.compile(
    r"\b(prefers?|preferred|likes?|wants?|always|never|please|keep|be|use|avoid|don'?t|do not|no)\b",
    re.IGNORECASE,
)
_ABOUT_ANSWERS = re.compile(
    r"\b(answers?|repl(?:y|ies)|respon(?:d|ses?)|explain|explanations?|bullets?|bullet points|"
    r"tables?|format(?:ting|ted)?|markdown|emojis?|tone|formal|informal|short(?:er)?|brief(?:ly)?|"
    r"concise(?:ly)?|detailed|verbose|length|summar(?:y|ies)|jargon|units|"
    r"in (?:english|german|french|spanish|italian|portuguese|dutch|polish|swedish|danish|"
    r"norwegian|finnish|czech|japanese|chinese|korean))\b",
    re.IGNORECASE,
)
# "Answer in German", "Respond briefly", "Reply with bullet points": an instruction on its own.
_ANSWER_INSTRUCTION = re.compile(
    r"^\s*(?:please\s+)?(?:always\s+)?(?:answer|reply|respond|write|explain)\b", re.IGNORECASE
)


def classify_kind(text: str) -> str:
    """``MemoryItem.Kind.PREFERENCE`` when the text says how to answer, otherwise ``FACT``."""
    if _ANSWER_INSTRUCTION.search(text) or (_WISH.search(text) and _ABOUT_ANSWERS.search(text)):
        return MemoryItem.Kind.PREFERENCE
    return MemoryItem.Kind.FACT


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
    if not any(ch.isalnum() for ch in text):
        raise MemoryRefused("There is nothing to remember: write a few words.")
    if len(text) > MAX_ITEM_CHARS:
        raise MemoryRefused(f"A memory can be at most {MAX_ITEM_CHARS} characters.")
    return text


@transaction.atomic
def remember(
    *,
    user,
    text: str,
    source_message: Message | None = None,
    origin: str = MemoryItem.Origin.PERSON,
    vector: list[float] | None = None,
) -> MemoryItem:
    """Stores a fact, refreshing or replacing an item about the same thing instead of repeating it.

    ``origin``: ``LEARNED`` when the model proposed it after a turn, ``PERSON`` when the person
    wrote it (on the memory page or with "remember that ..."). ``vector``: the text's embedding,
    when the caller computed it before its transaction."""
    text = _clean(text)
    kind = classify_kind(text)
    if vector is None:
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
        closest.kind, closest.origin = kind, origin
        closest.save(
            update_fields=["text", "embedding", "source_message", "kind", "origin", "updated_at"]
        )
        return closest
    if MemoryItem.objects.filter(owner=user).count() >= MAX_ITEMS_PER_USER:
        oldest = MemoryItem.objects.filter(owner=user).order_by("updated_at").first()
        oldest.delete()
    return MemoryItem.objects.create(
        owner=user,
        text=text,
        embedding=vector,
        source_message=source_message,
        kind=kind,
        origin=origin,
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


def item_update(*, user, item_id: int, text: str, kind: str | None = None) -> MemoryItem:
    """The person's edit of their own item (``DoesNotExist`` for anyone else's). Changed words
    make it theirs (origin ``PERSON``); ``kind`` is the one they chose, or classified again
    from new words when they chose none."""
    item = MemoryItem.objects.get(owner=user, pk=item_id)
    text = _clean(text)
    if kind is not None and kind not in MemoryItem.Kind.values:
        raise MemoryRefused("Choose whether this is about you or about how to answer.")
    fields = ["kind", "updated_at"]
    if text != item.text:
        item.text, item.origin = text, MemoryItem.Origin.PERSON
        item.embedding = get_embedder().embed_documents([text])[0]
        fields += ["text", "origin", "embedding"]
    item.kind = kind or (classify_kind(text) if "text" in fields else item.kind)
    item.save(update_fields=fields)
    return item


def item_delete(*, user, item_id: int) -> str:
    """Deletes the person's own item and returns its text (``DoesNotExist`` for anyone else's)."""
    item = MemoryItem.objects.get(owner=user, pk=item_id)
    item.delete()
    return item.text


def delete_all(*, user) -> int:
    return MemoryItem.objects.filter(owner=user).delete()[0]


def set_paused(*, user, paused: bool) -> None:
    MemorySettings.objects.update_or_create(user=user, defaults={"paused": paused})


def set_auto_learn(*, user, on: bool) -> None:
    """The person's own choice, which overrides the site's default (``MEMORY_AUTO_LEARN``)."""
    MemorySettings.objects.update_or_create(user=user, defaults={"auto_learn": on})
