"""Repeated questions answered at once, never across permissions.

On a local model an answer costs tens of seconds, and in a company many people ask the same
thing. An answer is reused only when reusing it cannot tell anyone more than a fresh answer
would, so the key is everything the answer depended on:

- the question, normalised (case, spacing, trailing punctuation);
- the exact set of collections the asker could search, each with its knowledge version
  (``knowledge.selectors.knowledge_versions``: any source added, changed or removed there, on
  any path, gives a new number). Someone who can read more, or less, gets another key;
- the model, its endpoint and sampling settings, the prompt (its template, hashed) and the
  retrieval settings.

Only a first question is stored or served, with no memory item, history or thread in its
prompt; for such a question the prompt does not carry the asker's name either, so nothing in
it belongs to one person. A hit is re-checked before it is given: the answer it copies must
be complete, written by a model (never the quoted passages given while it was down), not
superseded, without unsupported citations or a thumbs-down (on it or on any copy), and every
passage it shows must still exist in the asker's collections. Regenerating
an answer always asks the model afresh, and the fresh answer replaces the entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from assistant import llm
from assistant.answering import extractive, prompts
from assistant.models import AnswerCacheEntry, Feedback, Message
from knowledge import embeddings
from knowledge.selectors import chunks_all_readable

# Bump when code changes what the model is given for the same template (source formatting,
# budgets, history rules): older entries then stop matching.
PROMPT_VERSION = 1


def enabled() -> bool:
    return settings.ANSWER_CACHE_SECONDS > 0


def normalise(question: str) -> str:
    text = unicodedata.normalize("NFKC", question).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" ?!.…。？！").strip()


@lru_cache(maxsize=1)
def _prompt_fingerprint() -> str:
    return hashlib.sha256(prompts.template_source().encode()).hexdigest()


def key(*, question: str, knowledge_versions: dict[int, int], config: llm.LLMConfig) -> str:
    payload = {
        "question": normalise(question),
        "scope": sorted([int(c), int(v)] for c, v in knowledge_versions.items()),
        "model": [config.base_url, config.model, config.temperature, config.max_tokens],
        "prompt": [PROMPT_VERSION, _prompt_fingerprint(), settings.LLM_CONTEXT_TOKENS],
        "retrieval": [
            embeddings.get_embedder().name,
            settings.RETRIEVAL_TOP_K,
            settings.RETRIEVAL_MIN_SIMILARITY,
        ],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _since():
    return timezone.now() - timedelta(seconds=settings.ANSWER_CACHE_SECONDS)


def lookup(*, key: str, collection_ids) -> Message | None:
    """The stored answer for ``key`` if it may still be given to a reader of
    ``collection_ids``; counts the hit."""
    if not enabled():
        return None
    entry = (
        AnswerCacheEntry.objects.select_related("message")
        .filter(key=key, created_at__gte=_since())
        .first()
    )
    if entry is None:
        return None
    message = entry.message
    if (
        message.role != Message.Role.ASSISTANT
        or message.status != Message.Status.COMPLETE
        or message.superseded
        or message.unsupported
        or extractive.is_extractive(message.model)
    ):
        return None
    disliked = Feedback.objects.filter(rating=Feedback.Rating.DOWN).filter(
        Q(message=message) | Q(message__cached_from=message)
    )
    if disliked.exists():
        return None
    chunk_ids = {s.get("chunk_id") for s in message.sources}
    chunk_ids |= set(message.citations.values_list("chunk_id", flat=True))
    if None in chunk_ids or not chunks_all_readable(
        chunk_ids=chunk_ids, collection_ids=collection_ids
    ):
        return None
    AnswerCacheEntry.objects.filter(pk=entry.pk).update(
        hits=F("hits") + 1, last_hit_at=timezone.now()
    )
    return message


def store(*, key: str, message: Message) -> None:
    """Makes ``message`` the answer for ``key`` (a fresh answer replaces an older one).

    Only a model's answer is kept: quoted passages given while the model was down
    (``answering.extractive``) would otherwise stand in for a real answer for days."""
    if not enabled() or extractive.is_extractive(message.model):
        return
    AnswerCacheEntry.objects.filter(created_at__lt=_since()).delete()
    AnswerCacheEntry.objects.update_or_create(
        key=key,
        defaults={"message": message, "created_at": timezone.now(), "hits": 0, "last_hit_at": None},
    )


def cited_numbers(message: Message) -> list[int]:
    return list(message.citations.order_by("number").values_list("number", flat=True))
