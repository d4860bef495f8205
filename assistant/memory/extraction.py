"""Learning after each turn, with the model: durable facts about the person from what they
wrote (never from an answer or a passage), and a summary of a conversation that outgrows its
budget. Runs in a worker (``assistant.tasks.after_turn``): learning only for a person who has it
on (``selectors.auto_learn_for``), summaries only where background model work is allowed
(``selectors.auto_learn_default``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from assistant import llm
from assistant.memory.selectors import (
    auto_learn_default,
    auto_learn_for,
    is_enabled,
    relevant_items,
)
from assistant.memory.services import MAX_ITEM_CHARS, parse_command, remember
from assistant.models import Conversation, MemoryItem, Message
from assistant.project.tasking import enqueue_on_commit, waiting_count
from knowledge.embeddings import get_embedder

logger = logging.getLogger(__name__)

MAX_FACTS_PER_TURN = 5
# Extraction output that reads like instructions to the model is not a fact about the user.
_INJECTION = re.compile(
    r"(ignore|disregard|override)\b.{0,40}\b(instruction|prompt|rule)|system prompt|you (must|should) (always|never)|"
    r"\bassistant\s*:|<\s*/?\s*(system|script)|jailbreak|reveal\b.{0,30}\b(prompt|secret|password)",
    re.IGNORECASE,
)


_FACT_TEXT = {"type": "string", "maxLength": MAX_ITEM_CHARS}
EXTRACTION_SCHEMA = {
    "title": "memory_facts",
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "maxItems": MAX_FACTS_PER_TURN,
            "items": {
                "type": "object",
                "properties": {
                    "text": _FACT_TEXT,
                    # numbers of known facts this one corrects or contradicts
                    "replaces": {"type": "array", "maxItems": 3, "items": {"type": "integer"}},
                },
                "required": ["text"],
            },
        }
    },
    "required": ["facts"],
}
KNOWN_FACTS_IN_PROMPT = 8
# The examples the extraction prompt shows the model. A small model copies them as facts (it
# once stored "The user works in the Berlin office.", then the example, after questions about
# PostgreSQL and zstd), so a fact with exactly an example's words is dropped even when the
# person said them. They are chosen to be rarely true of anyone, since a person who does say
# them must write them on the memory page or with "remember that ...".
PROMPT_EXAMPLES = (
    "The user works in the Reykjavik office.",
    "The user prefers answers in Icelandic.",
)


@dataclass(frozen=True)
class LearnedFact:
    text: str
    replaces: tuple[int, ...] = ()  # numbers of the known facts shown to the model (1-based)


def parse_extraction(raw: str, *, known: int = 0) -> list[LearnedFact]:
    """The model's JSON, checked: short plain statements, nothing that reads as instructions,
    and ``replaces`` numbers only within the ``known`` facts it was shown.

    A fact may be a string or ``{"text": ..., "replaces": [n, ...]}``. Invalid, truncated or
    oversized output yields nothing (and is logged), never an exception.
    """
    if not isinstance(raw, str) or len(raw) > 20_000:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        logger.info("memory extraction returned invalid JSON")
        return []
    facts = data.get("facts") if isinstance(data, dict) else None
    if not isinstance(facts, list):
        return []
    kept = []
    for fact in facts[:MAX_FACTS_PER_TURN]:
        replaces: list = []
        if isinstance(fact, dict):
            fact, replaces = fact.get("text"), fact.get("replaces") or []
        if not isinstance(fact, str) or not isinstance(replaces, list):
            continue
        fact = " ".join(fact.split())
        if not fact or len(fact) > MAX_ITEM_CHARS or _INJECTION.search(fact):
            continue
        numbers = tuple(
            dict.fromkeys(
                n
                for n in replaces[:3]
                if type(n) is int and 1 <= n <= known  # not bools
            )
        )
        kept.append(LearnedFact(fact, numbers))
    return kept


def validate_extraction(raw: str) -> list[str]:
    """The texts of :func:`parse_extraction`'s facts."""
    return [fact.text for fact in parse_extraction(raw)]


def _extraction_messages(user_text: str, known: list[MemoryItem]) -> list[llm.ChatMessage]:
    """Only the person's own words go to the model: an answer quotes and paraphrases passages
    (perhaps restricted ones), and nothing from a passage may become a memory item."""
    from django.template.loader import render_to_string

    system = render_to_string(
        "prompts/memory_extraction.txt",
        {"examples": ", ".join(f'"{example}"' for example in PROMPT_EXAMPLES)},
    ).strip()
    facts = "\n".join(f"[{n}] {item.text}" for n, item in enumerate(known, 1)) or "(none)"
    turn = f"Known facts:\n{facts}\n\nThe user wrote: {user_text[:4000]}"
    return [llm.ChatMessage("system", system), llm.ChatMessage("user", turn)]


# Words the extraction uses to frame a fact about the user; they need not be in what was said.
_FRAMING_LEXEMES = frozenset(
    {"user", "prefer", "like", "want", "work", "call", "name", "answer", "respons", "repli", "also"}
    # Not "always", "usually", "often": they are claims ("The user travels often" from a
    # question about the travel policy), so they must be in what was said.
    | {"current", "now", "base", "live", "locat", "speak", "say", "said"}
    | {"mention"}
)


def _lexemes(cursor, text: str) -> set[str]:
    cursor.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", [text])
    return set(cursor.fetchone()[0] or [])


# The share of a fact's content words (stemmed, stop words and framing words left out) that
# must be in what the person wrote. Measured on the labelled facts in
# tests/assistant/test_memory_grounding.py: faithful paraphrases share all of them, facts drawn
# from elsewhere (a passage, an answer, the model's own knowledge or examples) at most 0.67.
GROUNDED_SHARE = 1.0
_NUMBER = re.compile(r"\d+")


def grounding_share(fact: str, said: str) -> float:
    """The share of the fact's content words found in ``said`` (0.0 for a fact with none)."""
    with connection.cursor() as cursor:
        words = _lexemes(cursor, fact) - _FRAMING_LEXEMES
        return len(words & _lexemes(cursor, said)) / len(words) if words else 0.0


def _is_prompt_example(lexemes: set[str], cursor) -> bool:
    return any(lexemes == _lexemes(cursor, example) for example in PROMPT_EXAMPLES)


def grounded_facts(facts: list[LearnedFact], user_text: str) -> list[LearnedFact]:
    """The facts grounded in what the person wrote: at least ``GROUNDED_SHARE`` of their content
    words (stemmed, as full-text search stems them) and every number in it, never one of the
    prompt's own examples, never a fact without a content word (punctuation, framing only).
    A fact the model took from anywhere else (a passage, an answer, its own knowledge, its
    prompt) is dropped, even when the model proposes it."""
    if not facts:
        return []
    said_numbers = set(_NUMBER.findall(user_text))
    with connection.cursor() as cursor:
        said = _lexemes(cursor, user_text)
        kept = []
        for fact in facts:
            lexemes = _lexemes(cursor, fact.text)
            words = lexemes - _FRAMING_LEXEMES
            if _is_prompt_example(lexemes, cursor):
                logger.info("memory extraction: dropped a copy of the prompt's example")
            elif (
                words
                and len(words & said) / len(words) >= GROUNDED_SHARE
                and set(_NUMBER.findall(fact.text)) <= said_numbers
            ):
                kept.append(fact)
            else:
                logger.info("memory extraction: dropped a fact not found in what the user wrote")
    return kept


async def _complete_json(messages, schema):
    return await llm.complete_json(messages, schema=schema)


class TurnBusy(Exception):
    """Another worker is learning from this turn right now; try again once it is done."""


# Advisory-lock namespace for "learning from answer N" (knowledge's indexing uses 7301/7302).
LEARN_LOCK_NAMESPACE = 7303


def _try_lock(answer_id) -> bool:
    # A session lock, not a lease with an expiry: a worker killed mid-extraction loses its
    # connection, and PostgreSQL releases the lock with it, so the redelivered task can go on.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", [LEARN_LOCK_NAMESPACE, str(answer_id)]
        )
        return cursor.fetchone()[0]


def _unlock(answer_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_unlock(%s, hashtext(%s))", [LEARN_LOCK_NAMESPACE, str(answer_id)]
        )


def learn_from_turn(*, answer_id) -> list[str]:
    """Runs in a worker after an answer: asks the model for durable facts about the user and merges them.

    The model sees only the question the person wrote (never the answer or its passages), and
    a fact is kept only when its words are in that question.

    Safe to run twice: a turn is learned from at most once (``Message.learned_at``, set with the
    facts in one transaction). Raises ``TurnBusy`` while another worker is at the same turn."""
    answer = Message.objects.select_related("conversation", "reply_to").filter(pk=answer_id).first()
    if answer is None or answer.reply_to is None or answer.status != Message.Status.COMPLETE:
        return []
    conversation: Conversation = answer.conversation
    user = conversation.owner
    if (
        answer.learned_at is not None
        or not conversation.remember
        or not is_enabled(user)
        or parse_command(answer.reply_to.content)
    ):
        return []
    if not _try_lock(answer.pk):
        raise TurnBusy(answer.pk)
    try:
        # Read again under the lock: the worker that held it may have just finished.
        if Message.objects.filter(pk=answer.pk, learned_at__isnull=False).exists():
            return []
        return _learn_locked(answer, user)
    finally:
        _unlock(answer.pk)


def _learn_locked(answer: Message, user) -> list[str]:
    import asyncio

    # The user's facts nearest to this turn, numbered, so the model can say which one a new
    # statement corrects even when the two are phrased too differently for similarity to tell.
    said = answer.reply_to.content
    known = relevant_items(user=user, query=said, limit=KNOWN_FACTS_IN_PROMPT, min_similarity=0.0)
    messages = _extraction_messages(said, known)
    try:
        raw = asyncio.run(_complete_json(messages, EXTRACTION_SCHEMA))
    except llm.LLMError:
        # Not marked learned: a later delivery of the task may find the model back.
        logger.info("memory extraction skipped: the model is unavailable")
        return []
    facts = grounded_facts(parse_extraction(raw, known=len(known)), said)
    # Embedded before the transaction: an embeddings endpoint is an external call.
    vectors = get_embedder().embed_documents([fact.text for fact in facts]) if facts else []
    with transaction.atomic():
        # The marker and the facts commit together: a worker killed before this commit left
        # nothing, one killed after it left both, and a later delivery stops at the marker.
        marked = Message.objects.filter(pk=answer.pk, learned_at__isnull=True).update(
            learned_at=timezone.now()
        )
        if not marked:
            return []
        for fact, vector in zip(facts, vectors, strict=True):
            replaced = [known[n - 1].pk for n in fact.replaces]
            MemoryItem.objects.filter(owner=user, pk__in=replaced).delete()
            remember(
                user=user,
                text=fact.text,
                source_message=answer.reply_to,
                origin=MemoryItem.Origin.LEARNED,
                vector=vector,
            )
    return [fact.text for fact in facts]


# --- after each answer ----------------------------------------------------------------------


def after_turn(*, answer_id) -> None:
    """Learns durable facts from the turn when the person has learning on
    (``auto_learn_for``), and summarises the conversation when it grows long where background
    model work is allowed (``auto_learn_default``)."""
    answer = Message.objects.select_related("conversation__owner").filter(pk=answer_id).first()
    if answer is None:
        return
    if auto_learn_for(answer.conversation.owner):
        learn_from_turn(answer_id=answer_id)
    if auto_learn_default():
        summarise_if_long(conversation_id=answer.conversation_id)
    # Done (whatever was learned): the sweep no longer owes this turn anything.
    Message.objects.filter(pk=answer_id).update(after_turn_due_at=None)


def after_turns_requeue_stuck(*, older_than_seconds: float, limit: int = 200) -> list[str]:
    """Queues again the after-turn work still owed ``older_than_seconds`` after an answer ended
    (for answers younger than ``AFTER_TURN_REQUEUE_MAX_AGE_SECONDS``) while nothing waits in its
    queue: its task was lost. Returns the answers' ids.

    Each is claimed (its due time renewed; rows another worker's sweep holds are skipped), so
    several workers sweeping at once queue it once; run twice, a turn is still learned from
    once (``learned_at``)."""
    if waiting_count("assistant.after_turn"):
        return []
    now = timezone.now()
    too_old = now - timedelta(seconds=settings.AFTER_TURN_REQUEUE_MAX_AGE_SECONDS)
    # Past the age limit nothing is owed any more: forgotten, so the owed rows stay few.
    Message.objects.filter(after_turn_due_at__isnull=False, created_at__lt=too_old).update(
        after_turn_due_at=None
    )
    with transaction.atomic():
        ids = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(
                after_turn_due_at__lt=now - timedelta(seconds=older_than_seconds),
                # Bounded by the answer's age, not the claim's: a turn whose task keeps dying
                # is not queued for ever.
                created_at__gte=too_old,
            )
            .order_by("after_turn_due_at")
            .values_list("pk", flat=True)[:limit]
        )
        Message.objects.filter(pk__in=ids).update(after_turn_due_at=now)
        for pk in ids:
            enqueue_on_commit("assistant.after_turn", str(pk))
    if ids:
        logger.warning("re-queued after-turn work whose task was lost", extra={"answers": ids})
    return [str(pk) for pk in ids]


# --- long conversations ---------------------------------------------------------------------


def summarise_if_long(*, conversation_id, keep_recent: int = 6) -> bool:
    """Folds older turns into the conversation's summary once history outgrows its budget."""
    import asyncio

    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return False
    turns = Message.objects.filter(conversation=conversation, superseded=False).exclude(content="")
    if conversation.summary_until:
        turns = turns.filter(created_at__gt=conversation.summary_until)
    turns = list(turns.order_by("created_at"))
    budget = int(settings.LLM_CONTEXT_TOKENS * 0.25)
    if len(turns) <= keep_recent or sum(llm.count_tokens(m.content) for m in turns) <= budget:
        return False
    older = turns[:-keep_recent]
    transcript = "\n".join(f"{m.role}: {m.content[:1500]}" for m in older)
    from django.template.loader import render_to_string

    messages = [
        llm.ChatMessage("system", render_to_string("prompts/summarise.txt").strip()),
        llm.ChatMessage(
            "user",
            (f"Summary so far: {conversation.summary}\n\n" if conversation.summary else "")
            + transcript,
        ),
    ]
    schema = {
        "title": "summary",
        "type": "object",
        "properties": {"summary": {"type": "string"}},
        "required": ["summary"],
    }
    try:
        raw = asyncio.run(_complete_json(messages, schema))
        summary = json.loads(raw).get("summary", "")
    except (llm.LLMError, ValueError, AttributeError):
        logger.info("conversation summary skipped")
        return False
    if not isinstance(summary, str) or not summary.strip():
        return False
    Conversation.objects.filter(pk=conversation.pk).update(
        summary=summary.strip()[:4000], summary_until=older[-1].created_at
    )
    return True
