"""One answer run to completion, for doors that hand back a whole answer at once (the MCP
server's ``ask``; the OpenAI-compatible API's non-streaming completions can share it).

The answer comes from the one pipeline (``answering.pipeline.answer_stream``), exactly as the
chat's socket drives it: the question is stored first (``services.question_ask``: the busy
rule and the per-person rate limit), the answer is stored whatever happens, and the
conversation appears in the person's history with its door as ``origin``. Nothing here talks
to the model or the database except through the pipeline and the services.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field

from assistant import selectors, services
from assistant.answering.pipeline import answer_stream
from assistant.models import Conversation, Message
from assistant.project.threads import db


@dataclass(frozen=True)
class CompletedAnswer:
    """How one answer ended.

    ``status``: ``complete`` or ``failed`` (``error_code`` and ``error``, for people, say why;
    ``text`` keeps whatever was written before the failure). ``cited``: the passages the text
    cites with ``[n]``, in order of first use, as the pipeline numbered them (``n``,
    ``chunk_id``, ``source_id``, ``collection_id``, ``title``, ``source_name``, ``url``,
    ``heading``, ``page``, ``text``). ``sources``: every passage the answer was given."""

    conversation_id: str
    question_id: str
    message_id: str | None
    status: str
    text: str
    cited: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    usage: dict = field(default_factory=dict)
    error_code: str = ""
    error: str = ""


async def answer_to_completion(
    *, user, question: Message, collection_ids: list[int]
) -> CompletedAnswer:
    """Runs the pipeline for a stored ``question`` until it ends and gathers its events.

    ``collection_ids``: the whole reach of this answer (a token's scope; empty = nothing).
    Cancelling the caller (a client hanging up) stops the answer, which is stored as stopped,
    as the chat's stop button would."""
    parts: list[str] = []
    cited: list[dict] = []
    sources: list[dict] = []
    message_id = None
    # The token's collections bound the history too, and a token's door neither reads nor
    # changes the person's memory.
    stream = answer_stream(
        user=user,
        question=question,
        collection_ids=list(collection_ids),
        history_scope=list(collection_ids),
        memory=False,
    )
    async with contextlib.aclosing(stream) as events:
        async for event in events:
            if event.type == "retrieval":
                message_id, sources = event.message_id, list(event.sources)
            elif event.type == "delta":
                parts.append(event.text)
            elif event.type == "citation":
                cited.append(event.source)
            elif event.type == "error":
                return CompletedAnswer(
                    conversation_id=str(question.conversation_id),
                    question_id=str(question.pk),
                    message_id=event.message_id or message_id,
                    status=Message.Status.FAILED,
                    text="".join(parts),
                    cited=cited,
                    sources=sources or list(event.sources),
                    error_code=event.code,
                    error=event.message,
                )
            elif event.type == "done":
                return CompletedAnswer(
                    conversation_id=str(question.conversation_id),
                    question_id=str(question.pk),
                    message_id=event.message["id"],
                    status=event.message["status"],
                    # The stored text: a cached answer arrives as one delta, a fresh one as many.
                    text=event.message["content"],
                    cited=cited,
                    sources=sources,
                    usage=dict(event.usage),
                )
    # The pipeline always ends with done or error; an answer cut short says so.
    return CompletedAnswer(
        conversation_id=str(question.conversation_id),
        question_id=str(question.pk),
        message_id=message_id,
        status=Message.Status.FAILED,
        text="".join(parts),
        cited=cited,
        sources=sources,
        error_code="internal",
        error=services.INTERRUPTED,
    )


def _question_ask(*, user, text: str, conversation_id: uuid.UUID | None, origin: str) -> Message:
    conversation = None
    if conversation_id is not None:
        conversation = selectors.conversation_get_for_user(
            user=user, conversation_id=conversation_id
        )
    return services.question_ask(user=user, conversation=conversation, text=text, origin=origin)


def _owned(*, user, conversation_id: uuid.UUID) -> None:
    selectors.conversation_get_for_user(user=user, conversation_id=conversation_id)


def _conversation_key(value) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        # Not even an id: the same answer as someone else's conversation or a missing one.
        raise Conversation.DoesNotExist from None


async def ask_to_completion(
    *,
    user,
    text: str,
    collection_ids: list[int],
    conversation_id: str | None = None,
    origin: str = Conversation.Origin.API,
) -> CompletedAnswer:
    """Asks ``text`` as ``user`` (in their conversation ``conversation_id``, or a new one with
    ``origin``) and returns the finished answer.

    Raises ``Conversation.DoesNotExist`` for a conversation that is missing, not theirs or not
    an id (the same for all three), ``services.RateLimited`` over the person's shared question
    budget and ``services.Busy`` while an answer in that conversation is being written. The
    caller checked ``text`` (not empty, within ``CHAT_MAX_QUESTION_CHARS``)."""
    if conversation_id is None:
        question = await db(_question_ask)(
            user=user, text=text, conversation_id=None, origin=origin
        )
        return await answer_to_completion(
            user=user, question=question, collection_ids=collection_ids
        )
    # Claimed from the question to the end of the answer (services.conversation_claim): of two
    # requests on one conversation at the same moment, the second gets Busy. Someone else's id
    # never reaches the claim: it is "no such conversation" first, with no hint it is busy.
    conversation_key = _conversation_key(conversation_id)
    await db(_owned)(user=user, conversation_id=conversation_key)
    await db(services.conversation_claim)(conversation_id=conversation_key)
    try:
        question = await db(_question_ask)(
            user=user, text=text, conversation_id=conversation_key, origin=origin
        )
        return await answer_to_completion(
            user=user, question=question, collection_ids=collection_ids
        )
    finally:
        await db(services.conversation_release)(conversation_id=conversation_key)
