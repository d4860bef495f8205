"""Writes for the OpenAI-compatible API: storing the question, in a stored conversation of the
person's or in a new one (origin ``api``) that starts with the client's earlier turns.

What a request's earlier messages mean:

- naming a stored conversation (``X-Conversation-Id`` or ``user``): that conversation's own
  history is what the model reads; the client's earlier messages are ignored, so nothing a
  client sends can rewrite what was said there;
- a fresh conversation: the client's earlier turns are its history. They are stored before the
  question, as the person's own conversation (only they see it), so the pipeline reads them as
  it reads any history, and the web page shows what the answer was based on. An assistant turn
  a client sends is stored as said by the client (``CLIENT_TURN_MODEL``), with no passages and
  no citations: only the pipeline's own answers carry those.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction

from assistant import selectors, services
from assistant.models import Conversation, Message

CLIENT_TURN_MODEL = Message.CLIENT_WRITTEN  # an assistant turn the client sent, not one we wrote
# The pipeline reads at most this many earlier turns of any conversation; a fresh API
# conversation stores no more than that of the client's.
HISTORY_TURNS = selectors.HISTORY_TURNS


def api_question_ask(
    *, user, conversation_id: str | None, text: str, earlier: Sequence[tuple[str, str]] = ()
) -> Message:
    """Stores ``text`` as ``user``'s question and returns it, under the chat's rules (the
    shared per-user rate limit, refused while the conversation is answering).

    ``conversation_id`` names one of ``user``'s conversations (someone else's or a missing one:
    ``Conversation.DoesNotExist``). Then it is claimed until the caller calls
    ``services.conversation_release`` (at the answer's first event): of two requests at once, one
    answers and the other gets ``services.Busy``. Without it, a new conversation (origin
    ``api``) is made, holding ``earlier`` (the latest ``HISTORY_TURNS``) before the question."""
    if conversation_id is None:
        services.rate_limit_check(user=user)
        return _fresh(user=user, text=text, earlier=list(earlier)[-HISTORY_TURNS:])
    conversation = selectors.conversation_get_for_user(user=user, conversation_id=conversation_id)
    if conversation.origin == Conversation.Origin.SLACK:
        # The chat would start a new conversation; an API client asked for this one by id.
        raise services.ChatError(
            "This conversation lives in a Slack thread: continue it there, or start a new one."
        )
    question, _ = services.conversation_claimed(
        conversation,
        lambda: services.question_ask(user=user, conversation=conversation, text=text),
    )
    return question


@transaction.atomic
def _fresh(*, user, text: str, earlier: list[tuple[str, str]]) -> Message:
    question = services.question_create(
        user=user, conversation=None, text=text, origin=Conversation.Origin.API
    )
    if earlier:
        turns = Message.objects.bulk_create(
            Message(
                conversation_id=question.conversation_id,
                role=role,
                content=content,
                status=Message.Status.COMPLETE,
                model=CLIENT_TURN_MODEL if role == Message.Role.ASSISTANT else "",
            )
            for role, content in earlier
        )
        # Before the question, in the client's order: the history is read by creation time
        # (auto_now_add stamps the insert, so the order is set after it).
        for offset, turn in enumerate(reversed(turns), 1):
            turn.created_at = question.created_at - timedelta(microseconds=offset)
        Message.objects.bulk_update(turns, ["created_at"])
    return question
