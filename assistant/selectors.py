"""Reads for the chat domain. Missing and foreign raise the same DoesNotExist."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import Permission
from django.db.models import Exists, JSONField, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from assistant import llm
from assistant.models import Citation, Conversation, Message
from knowledge.models import Source
from knowledge.selectors import readable_collection_ids, source_deletion_events

UNREADABLE_ANSWER_PLACEHOLDER = "(an earlier answer drew on documents you can no longer read)"
HISTORY_TURNS = 40


def explicitly_granted(user, codename: str) -> bool:
    """Whether ``user`` holds the assistant's permission ``codename`` by a grant someone made
    on purpose (to them or a group of theirs). Superusers pass every ``has_perm()`` check;
    people's private data (conversations, memory) needs this instead, in the admin and on the
    Insights page alike."""
    return (
        user.is_active
        and Permission.objects.filter(codename=codename, content_type__app_label="assistant")
        .filter(user=user)
        .union(
            Permission.objects.filter(
                codename=codename, content_type__app_label="assistant", group__user=user
            )
        )
        .exists()
    )


def conversations_of(user, *, query: str = "") -> QuerySet[Conversation]:
    """``user``'s conversations; with ``query``, those whose title or a visible message holds it."""
    if user is None or not user.is_authenticated:
        return Conversation.objects.none()
    conversations = Conversation.objects.filter(owner=user)
    query = query.strip()[:200]
    if query:
        matching = Message.objects.filter(
            conversation=OuterRef("pk"), superseded=False, content__icontains=query
        )
        conversations = conversations.filter(Q(title__icontains=query) | Exists(matching))
    return conversations


def conversation_get_for_user(*, user, conversation_id) -> Conversation:
    return conversations_of(user).get(pk=conversation_id)


def message_get_for_user(*, user, message_id) -> Message:
    return Message.objects.select_related("conversation").get(
        pk=message_id, conversation__owner=user
    )


def answer_get_for_user(*, user, message_id) -> Message:
    """One of ``user``'s answers (a question, someone else's or a missing id: DoesNotExist)."""
    return Message.objects.select_related("conversation").get(
        pk=message_id, conversation__owner=user, role=Message.Role.ASSISTANT
    )


# A live answer saves its text about once a second, so two minutes of silence means no one is
# writing it any more (its process died).
STALE_STREAM_SECONDS = 120


def stale_stream_cutoff():
    return timezone.now() - timedelta(seconds=STALE_STREAM_SECONDS)


def is_stale_stream(message: Message) -> bool:
    return message.status == Message.Status.STREAMING and message.updated_at < stale_stream_cutoff()


def conversation_is_busy(conversation: Conversation) -> bool:
    """An answer in the conversation is being written right now (not one whose writer died)."""
    return conversation.messages.filter(
        status=Message.Status.STREAMING, superseded=False, updated_at__gte=stale_stream_cutoff()
    ).exists()


def visible_messages(conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.filter(superseded=False).order_by("created_at")


def versions_of(*, conversation: Conversation, messages: Iterable[Message]) -> dict:
    """Each message's versions, ``{message id: {count, index, ids}}`` (``index`` from 1, ids
    oldest first), in one query. The answers to one question are the versions of its answer;
    a question and its edits (``version_of``) are the versions of its question."""
    groups: dict[tuple, list] = {}
    keys: dict = {}
    rows = conversation.messages.order_by("created_at", "pk").values_list(
        "pk", "role", "reply_to_id", "version_of_id"
    )
    for pk, role, reply_to_id, version_of_id in rows:
        if role == Message.Role.ASSISTANT:
            key = ("answer", reply_to_id or pk)
        else:
            key = ("question", version_of_id or pk)
        keys[pk] = key
        groups.setdefault(key, []).append(pk)
    result = {}
    for message in messages:
        ids = groups.get(keys.get(message.pk), [message.pk])
        result[message.pk] = {
            "count": len(ids),
            "index": ids.index(message.pk) + 1,
            "ids": [str(i) for i in ids],
        }
    return result


def readable_collection_ids_cached(user) -> set[int]:
    """Per-request memo of the readable collection ids (one query per request, not per message)."""
    cached = getattr(user, "_readable_collection_ids", None)
    if cached is None:
        cached = set(readable_collection_ids(user))
        user._readable_collection_ids = cached
    return cached


# --- passages in stored answers -----------------------------------------------------------


# The (source id, collection id) of every passage stored with a message and of each of its
# citations, computed in the database: the history needs these, not every passage's text.
_PASSAGE_REFS_SQL = """
SELECT coalesce(jsonb_agg(jsonb_build_array(r.source_id, r.collection_id)), '[]'::jsonb) FROM (
    SELECT e -> 'source_id' AS source_id, e -> 'collection_id' AS collection_id
    FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(assistant_message.sources) = 'array'
             THEN assistant_message.sources ELSE '[]'::jsonb END
    ) AS e
    WHERE jsonb_typeof(e) = 'object'
    UNION ALL
    SELECT to_jsonb(c.source_id), to_jsonb(c.collection_id)
    FROM assistant_citation c WHERE c.message_id = assistant_message.id
) AS r
"""


def _with_passage_refs(messages: QuerySet[Message]) -> QuerySet[Message]:
    # A constant statement with no parameters: nothing from a user reaches this SQL.
    refs = RawSQL(_PASSAGE_REFS_SQL, [], output_field=JSONField())  # noqa: S611
    return messages.annotate(passage_refs=refs)


def _id_or_none(value) -> int | None:
    return value if type(value) is int else None


def _refs(message: Message) -> list[tuple[int | None, int | None]]:
    """(source id, collection id at answer time) of every passage an answer was given or cited."""
    annotated = getattr(message, "passage_refs", None)
    if annotated is not None:
        return [(_id_or_none(s), _id_or_none(c)) for s, c in annotated]
    refs = [
        (_id_or_none(s.get("source_id")), _id_or_none(s.get("collection_id")))
        for s in message.sources or []
        if isinstance(s, dict)
    ]
    refs += [(c.source_id, c.collection_id) for c in message.citations.all()]
    return refs


@dataclass(frozen=True)
class PassageAccess:
    """Whether a reader may still read the passages stored with answers.

    The collection copied onto a citation or a stored source at answer time goes stale when
    the source moves, so access is checked through the source's current row. A deleted source
    keeps its quote readable only while the collection it was last in is still readable (its
    quote was readable when cited; what matters is access lost since): that collection is the
    one the audit trail recorded at deletion, else (deleted without the service) the copy.
    """

    readable_collections: frozenset[int]
    current_collection: dict[int, int]  # source id -> its collection now
    deleted_from: dict[int, int]  # deleted source id -> the collection it was deleted from

    def readable(self, source_id: int | None, collection_id: int | None) -> bool:
        if source_id is not None and source_id in self.current_collection:
            return self.current_collection[source_id] in self.readable_collections
        collection_id = self.deleted_from.get(source_id, collection_id)
        return collection_id is not None and collection_id in self.readable_collections

    def all_readable(self, message: Message) -> bool:
        return all(self.readable(s, c) for s, c in _refs(message))


def passage_access_for(
    *, user, messages: Iterable[Message], scope: Collection[int] | None = None
) -> PassageAccess:
    """One query for the sources the messages refer to, one more only when some were deleted
    (citations should be prefetched). ``scope``: a token's collections; only passages in
    them count as readable (never more than ``user`` reads)."""
    source_ids = {s for m in messages for s, _ in _refs(m) if isinstance(s, int)}
    current: dict[int, int] = {}
    deleted_from: dict[int, int] = {}
    if source_ids:
        current = dict(Source.objects.filter(pk__in=source_ids).values_list("pk", "collection_id"))
    missing = source_ids - current.keys()
    if missing:
        events = source_deletion_events(missing).values_list("target_id", "detail")
        for target_id, detail in events:  # oldest first: an id's latest deletion wins
            collection = (detail or {}).get("collection") or {}
            if isinstance(collection.get("id"), int):
                deleted_from[int(target_id)] = collection["id"]
    # Not the per-request memo: a user object can outlive a group change (a long answer, a task).
    readable = frozenset(readable_collection_ids(user))
    if scope is not None:
        readable &= frozenset(scope)
    return PassageAccess(readable, current, deleted_from)


def citations_visible_to(*, user, message: Message) -> list[Citation]:
    """A message's citations whose source the reader may still read."""
    access = passage_access_for(user=user, messages=[message])
    return [c for c in message.citations.all() if access.readable(c.source_id, c.collection_id)]


# --- what is sent back to the model --------------------------------------------------------


def is_first_question(question: Message) -> bool:
    """Nothing was said before ``question`` in its conversation (superseded turns aside)."""
    return not (
        Message.objects.filter(conversation_id=question.conversation_id, superseded=False)
        .exclude(pk=question.pk)
        .filter(created_at__lt=question.created_at)
        .exists()
    )


def history_for_prompt(
    *, user, question: Message, scope: Collection[int] | None = None
) -> list[llm.ChatMessage]:
    """The earlier turns sent to the model with ``question``, as ``user`` may read them now.

    Recent turns, and in a long conversation its summary standing in for the older ones. An
    earlier answer whose passages (given or cited) are not all still readable by ``user`` is
    replaced by a placeholder: answers quote and paraphrase their passages. A summary covering
    such an answer is not sent either; the older turns then come as turns, placeholders
    included, within the usual limit. ``scope``: a token's collections (its whole reach):
    an answer is readable only if its passages all lie in them too.
    """
    conversation = Conversation.objects.get(pk=question.conversation_id)
    turns = (
        Message.objects.filter(conversation_id=question.conversation_id, superseded=False)
        .exclude(pk=question.pk)
        .filter(created_at__lt=question.created_at)
        .exclude(role=Message.Role.ASSISTANT, status=Message.Status.FAILED)
    )
    summary = conversation.summary if conversation.summary_until else ""
    covered: list[Message] = []
    if summary:
        covered = list(
            _with_passage_refs(
                Message.objects.filter(
                    conversation_id=conversation.pk,
                    role=Message.Role.ASSISTANT,
                    created_at__lte=conversation.summary_until,
                )
            ).only("id")
        )
    recent = _recent_turns(
        turns.filter(created_at__gt=conversation.summary_until) if summary else turns
    )
    access = passage_access_for(user=user, messages=[*covered, *recent], scope=scope)
    if summary and not all(access.all_readable(m) for m in covered):
        summary = ""
        recent = _recent_turns(turns)
        access = passage_access_for(user=user, messages=recent, scope=scope)
    history = []
    for message in reversed(recent):
        if not message.content:
            continue
        content = message.content
        if message.role == Message.Role.ASSISTANT and not access.all_readable(message):
            content = UNREADABLE_ANSWER_PLACEHOLDER
        history.append(llm.ChatMessage(message.role, content))
    if summary:
        history.insert(
            0, llm.ChatMessage("system", f"Summary of the earlier conversation: {summary}")
        )
    return history


def _recent_turns(turns: QuerySet[Message]) -> list[Message]:
    """The latest turns, newest first, with their passage references (not the passages)."""
    return list(
        _with_passage_refs(turns)
        .order_by("-created_at")
        .only("id", "role", "content")[:HISTORY_TURNS]
    )
