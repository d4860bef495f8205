"""Reads for the chat domain. Missing and foreign raise the same DoesNotExist."""

from __future__ import annotations

from django.db.models import QuerySet

from assistant.models import Citation, Conversation, Message
from knowledge.selectors import readable_collection_ids


def conversations_of(user) -> QuerySet[Conversation]:
    if user is None or not user.is_authenticated:
        return Conversation.objects.none()
    return Conversation.objects.filter(owner=user)


def conversation_get_for_user(*, user, conversation_id) -> Conversation:
    return conversations_of(user).get(pk=conversation_id)


def message_get_for_user(*, user, message_id) -> Message:
    return Message.objects.select_related("conversation").get(
        pk=message_id, conversation__owner=user
    )


def visible_messages(conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.filter(superseded=False).order_by("created_at")


def citations_visible_to(*, user, message: Message) -> list[Citation]:
    """A message's citations whose collection the reader may still read."""
    allowed = readable_collection_ids_cached(user)
    return [c for c in message.citations.all() if c.collection_id in allowed]


def readable_collection_ids_cached(user) -> set[int]:
    """Per-request memo of the readable collection ids (one query per request, not per message)."""
    cached = getattr(user, "_readable_collection_ids", None)
    if cached is None:
        cached = set(readable_collection_ids(user))
        user._readable_collection_ids = cached
    return cached
