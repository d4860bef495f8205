"""Writes for the chat domain: conversations, questions, answers, citations, feedback.

These are synchronous ORM functions; the async pipeline calls them through sync_to_async.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.events import user_event_send
from assistant import selectors
from assistant.models import Citation, Conversation, Feedback, Message
from assistant.project.tasking import enqueue_on_commit

T = TypeVar("T")

TITLE_CHARS = 60


class ChatError(Exception):
    """A refusal the user can act on; the message is shown as is."""


class RateLimited(ChatError):
    pass


def rate_limit_check(*, user) -> None:
    """At most CHAT_RATE_LIMIT_PER_MINUTE questions per user in any minute that starts with a
    question (shared via Redis): the window opens at the first question and lasts 60 s, so no
    clock-minute boundary lets twice the limit through in a second."""
    limit = settings.CHAT_RATE_LIMIT_PER_MINUTE
    if not limit:
        return
    key = f"assistant:rate:{user.pk}"
    if cache.add(key, 1, timeout=60):
        count = 1
    else:
        try:
            count = cache.incr(key)  # keeps the window's expiry
        except ValueError:  # the window closed between add and incr
            cache.add(key, 1, timeout=60)
            count = 1
    if count > limit:
        raise RateLimited(
            f"You are asking too fast: at most {limit} questions a minute. Try again shortly."
        )


def title_from_question(question: str) -> str:
    text = " ".join(question.split())
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[:TITLE_CHARS].rsplit(" ", 1)[0]
    return (cut or text[:TITLE_CHARS]) + "…"


def conversation_event(conversation: Conversation) -> dict:
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "origin": conversation.origin,
        "updated_at": conversation.updated_at.isoformat() if conversation.updated_at else None,
    }


def _notify_conversation(conversation: Conversation, kind: str) -> None:
    user_event_send(
        user_ids=conversation.owner_id,
        event={"type": f"conversation.{kind}", "conversation": conversation_event(conversation)},
    )


@transaction.atomic
def question_create(
    *,
    user,
    conversation: Conversation | None,
    text: str,
    origin: str = "web",
    version_of: Message | None = None,
) -> Message:
    """Stores the user's question first, so nothing the user typed is ever lost.

    A question asked from another door (the web) in a conversation held in a Slack thread
    starts a new conversation of its own: otherwise a later mention in that thread would carry
    what was said on the web into the channel. The new conversation's id is on the question.
    """
    if (
        conversation is not None
        and conversation.origin == Conversation.Origin.SLACK
        and origin != Conversation.Origin.SLACK
        and conversation.owner_id == user.pk
    ):
        conversation = None
    created = conversation is None
    if created:
        conversation = Conversation.objects.create(
            owner=user, origin=origin, title=title_from_question(text)
        )
    elif conversation.owner_id != user.pk:
        raise ChatError("This conversation is not yours.")
    elif not Conversation.objects.select_for_update().filter(pk=conversation.pk).exists():
        # Locked while the question is stored: the retention policy deleting this (idle)
        # conversation at this instant either finished first (it is gone: "not found") or skips
        # it (``retention.delete_in_batches``), and then finds it in use.
        raise Conversation.DoesNotExist("This conversation no longer exists.")
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=text, version_of=version_of
    )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    conversation.refresh_from_db()
    _notify_conversation(conversation, "created" if created else "updated")
    return message


@transaction.atomic
def answer_start(
    *, question: Message, sources: list[dict], memory_used: list[dict] = ()
) -> Message:
    return Message.objects.create(
        conversation_id=question.conversation_id,
        role=Message.Role.ASSISTANT,
        reply_to=question,
        status=Message.Status.STREAMING,
        sources=sources,
        memory_used=list(memory_used),
    )


def answer_checkpoint(*, message_id, content: str) -> None:
    """Saves the text so far (a reloading tab or a crash then keeps it); no status change."""
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        content=content, updated_at=timezone.now()
    )


@transaction.atomic
def answer_finish(
    *,
    message_id,
    content: str,
    status: str,
    error: str = "",
    model: str = "",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    timings: dict | None = None,
    citations: list[dict] | None = None,
    unsupported: list[dict] | None = None,
    learn: bool = True,
    cached_from: Message | None = None,
) -> Message:
    """Stores the answer as it ended. ``learn=False`` (an answer posted where many people read
    it) skips the after-turn work: no memory is learned and no summary is made from it.
    ``unsupported``: the cited sentences the grounding check found no support for.
    ``cached_from``: the answer this one copies (an identical recent question's)."""
    message = Message.objects.select_for_update().select_related("conversation").get(pk=message_id)
    timings = timings or {}
    message.content, message.status, message.error = content, status, error[:2000]
    message.model = model
    message.unsupported = list(unsupported or [])
    message.from_cache, message.cached_from = cached_from is not None, cached_from
    message.prompt_tokens, message.completion_tokens = prompt_tokens, completion_tokens
    message.retrieval_ms = _ms(timings.get("retrieval_ms"))
    message.first_token_ms = _ms(timings.get("first_token_ms"))
    message.total_ms = _ms(timings.get("total_ms"))
    owed = status == Message.Status.COMPLETE and learn
    message.after_turn_due_at = timezone.now() if owed else None
    message.save()
    message.citations.all().delete()
    Citation.objects.bulk_create(
        [
            Citation(
                message=message,
                chunk_id=c["chunk_id"],
                collection_id=c["collection_id"],
                source_id=c.get("source_id"),
                number=c["n"],
                quote=c["text"],
                document_title=(c.get("title") or "")[:500],
                source_name=(c.get("source_name") or "")[:300],
                source_url=c.get("url") or "",
                heading=(c.get("heading") or "")[:500],
                page=c.get("page"),
            )
            for c in citations or []
        ]
    )
    Conversation.objects.filter(pk=message.conversation_id).update(updated_at=timezone.now())
    if owed:
        enqueue_on_commit("assistant.after_turn", str(message.pk))
    user_event_send(
        user_ids=message.conversation.owner_id,
        event={
            "type": "message.finished",
            "conversation_id": str(message.conversation_id),
            "message_id": str(message.pk),
            "status": status,
        },
    )
    return message


def _refuse_slack_thread(conversation: Conversation) -> None:
    """A Slack thread's answers stay Slack's: redoing one here would add web turns to it."""
    if conversation.origin == Conversation.Origin.SLACK:
        raise ChatError(
            "This conversation lives in Slack. Ask here to continue it as a new conversation."
        )


INTERRUPTED = "The answer was interrupted."


def streams_fail_stale(*, conversation: Conversation) -> int:
    """Marks answers whose writer vanished (its process died) as failed, keeping their text.

    A live answer saves its text about once a second, so two minutes of silence means no one
    is writing it any more.
    """
    return conversation.messages.filter(
        status=Message.Status.STREAMING, updated_at__lt=selectors.stale_stream_cutoff()
    ).update(status=Message.Status.FAILED, error=INTERRUPTED, updated_at=timezone.now())


class Busy(ChatError):
    """An answer in this conversation is still being written."""


BUSY_MESSAGE = "An answer in this conversation is still being written; stop it or wait."
# The busy rule sees an answer once its row exists, which the pipeline writes after retrieval:
# doors that take a conversation by id (the API, MCP) claim it across that gap, so of two
# requests at the same moment one answers and the other is Busy. The claim outlives a process
# that died holding it by this long at most.
CONVERSATION_CLAIM_SECONDS = 60


def _claim_key(conversation_id) -> str:
    return f"assistant:conversation:{conversation_id}:claim"


def conversation_claim(*, conversation_id) -> None:
    """Claims a conversation for one question until ``conversation_release`` (``Busy`` when
    another request holds it). The caller checked the conversation is the person's."""
    if not cache.add(_claim_key(conversation_id), 1, timeout=CONVERSATION_CLAIM_SECONDS):
        raise Busy(BUSY_MESSAGE)


def conversation_release(*, conversation_id) -> None:
    cache.delete(_claim_key(conversation_id))


def conversation_claimed(conversation: Conversation | None, ask: Callable[[], T]) -> tuple[T, Any]:
    """Runs ``ask`` (storing a question in ``conversation``) under the conversation's claim, the
    one the API and MCP take: of a question from the chat and one from a script at the same
    instant, one is answered and the other is ``Busy``. Returns ``ask``'s result and the claimed
    id, which the caller releases (``conversation_release``) once the answer row exists; ``None``
    when nothing was claimed (a new conversation, or one held in a Slack thread, where the
    chat's question starts a conversation of its own)."""
    if conversation is None or conversation.origin == Conversation.Origin.SLACK:
        return ask(), None
    conversation_claim(conversation_id=conversation.pk)
    try:
        return ask(), conversation.pk
    except BaseException:
        conversation_release(conversation_id=conversation.pk)
        raise


def _refuse_if_busy(conversation: Conversation) -> None:
    streams_fail_stale(conversation=conversation)
    if selectors.conversation_is_busy(conversation):
        raise Busy(BUSY_MESSAGE)


def question_ask(
    *, user, conversation: Conversation | None, text: str, origin: str = Conversation.Origin.WEB
) -> Message:
    """A question from a person at the chat (rate limited; refused while the conversation is
    answering). A conversation held in a Slack thread is never busy for the web: the question
    starts a new conversation (``question_create``). ``origin``: the door asking (a token's
    ``api``), kept on a conversation it starts."""
    if conversation is not None and conversation.origin != Conversation.Origin.SLACK:
        _refuse_if_busy(conversation)
    rate_limit_check(user=user)
    return question_create(user=user, conversation=conversation, text=text, origin=origin)


def answer_regenerate(*, user, message: Message) -> Message:
    """Regenerate from the chat: the busy rule and the rate limit, then
    :func:`answer_supersede_for_regenerate`; returns the question to answer again."""
    _refuse_if_busy(message.conversation)
    rate_limit_check(user=user)
    return answer_supersede_for_regenerate(user=user, message=message)


def question_edit_ask(*, user, message: Message, text: str) -> Message:
    """Edit from the chat: the rate limit, then :func:`question_edit`."""
    rate_limit_check(user=user)
    return question_edit(user=user, message=message, text=text)


def _ms(value) -> int | None:
    return None if value is None else max(0, int(round(value)))


def _last_question(conversation: Conversation) -> Message | None:
    return (
        conversation.messages.filter(role=Message.Role.USER, superseded=False)
        .order_by("-created_at")
        .first()
    )


@transaction.atomic
def answer_supersede_for_regenerate(*, user, message: Message) -> Message:
    """Moves an answer off the path so a new version can be written; returns its question.

    The answer stays as an earlier version (``selectors.versions_of``). Only the answer to the
    last question gets new versions: the versions of a turn are then all older than the next
    turn, so the path stays in time order.
    """
    if message.conversation.owner_id != user.pk or message.role != Message.Role.ASSISTANT:
        raise ChatError("Only your own answers can be regenerated.")
    if message.status == Message.Status.STREAMING:
        raise ChatError("This answer is still being written.")
    _refuse_slack_thread(message.conversation)
    last = _last_question(message.conversation)
    if last is None or message.reply_to_id != last.pk:
        raise ChatError("Only the answer to the last question can be regenerated.")
    message.reply_to.replies.update(superseded=True)
    return message.reply_to


@transaction.atomic
def question_edit(*, user, message: Message, text: str) -> Message:
    """Asks an edited version of the last question; returns the new question.

    The earlier question and its answers stay as an earlier version of the turn. A title that
    came from the edited question follows the edit; a title the person chose stays.
    """
    conversation = message.conversation
    if conversation.owner_id != user.pk or message.role != Message.Role.USER:
        raise ChatError("Only your own questions can be edited.")
    _refuse_slack_thread(conversation)
    last = _last_question(conversation)
    if last is None or last.pk != message.pk:
        raise ChatError("Only the last question can be edited.")
    if message.replies.filter(status=Message.Status.STREAMING).exists():
        raise ChatError("Stop the answer before editing the question.")
    _retitle_for_version(conversation, shown=message, text=text)
    message.replies.update(superseded=True)
    Message.objects.filter(pk=message.pk).update(superseded=True)
    return question_create(
        user=user,
        conversation=conversation,
        text=text,
        version_of=message.version_of or message,
    )


def _retitle_for_version(conversation: Conversation, *, shown: Message, text: str) -> None:
    """Gives the conversation the title of ``text`` when its title came from ``shown`` (the
    version of the first question being replaced); a title the person renamed stays."""
    first = conversation.messages.filter(superseded=False).order_by("created_at").only("pk").first()
    if first is None or first.pk != shown.pk:
        return
    if conversation.title != title_from_question(shown.content):
        return
    title = title_from_question(text)
    if title == conversation.title:
        return
    Conversation.objects.filter(pk=conversation.pk).update(title=title)
    conversation.title = title
    _notify_conversation(conversation, "renamed")


@transaction.atomic
def version_switch(*, user, message: Message) -> Message:
    """Shows ``message`` (a version of a question or of an answer) in place of the version of
    its turn shown now; returns it. Refused while an answer in the conversation is written.

    A question brings back the answer that was showing with it; an answer to a question off
    the path brings its question back too. The conversation's path is what the model reads as
    history, what the API returns and what a reload shows.
    """
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    if conversation.owner_id != user.pk:
        raise ChatError("This conversation is not yours.")
    _refuse_slack_thread(conversation)
    _refuse_if_busy(conversation)
    message = Message.objects.select_related("reply_to").get(pk=message.pk)  # read under the lock
    now = timezone.now()
    if message.role == Message.Role.ASSISTANT:
        question = message.reply_to
        if question is None:
            raise ChatError("This answer has no other versions.")
        if question.superseded:
            _show_question(conversation, question, now=now, answer=message)
        else:
            question.replies.exclude(pk=message.pk).update(superseded=True)
            Message.objects.filter(pk=message.pk).update(superseded=False, chosen_at=now)
    elif message.superseded:
        _show_question(conversation, message, now=now)
    _drop_summary_covering(conversation, message)
    _notify_conversation(conversation, "updated")
    message.refresh_from_db()
    return message


def _drop_summary_covering(conversation: Conversation, message: Message) -> None:
    """A summary covering the turn of ``message`` was made from the version shown before the
    switch: it is dropped, and the model reads the turns themselves until the next summary."""
    if conversation.summary_until is None:
        return
    question = message.reply_to if message.role == Message.Role.ASSISTANT else message
    root_id = question.version_of_id or question.pk
    turn = Message.objects.filter(
        Q(pk=root_id)
        | Q(version_of_id=root_id)
        | Q(reply_to_id=root_id)
        | Q(reply_to__version_of_id=root_id),
        conversation_id=conversation.pk,
    )
    if turn.filter(created_at__lte=conversation.summary_until).exists():
        Conversation.objects.filter(pk=conversation.pk).update(summary="", summary_until=None)


def _show_question(
    conversation: Conversation, question: Message, *, now, answer: Message | None = None
) -> None:
    root_id = question.version_of_id or question.pk
    versions = Message.objects.filter(
        Q(pk=root_id) | Q(version_of_id=root_id), role=Message.Role.USER
    )
    shown = versions.filter(superseded=False).first()
    if shown is not None:
        _retitle_for_version(conversation, shown=shown, text=question.content)
    Message.objects.filter(reply_to__in=versions).update(superseded=True)
    versions.update(superseded=True)
    Message.objects.filter(pk=question.pk).update(superseded=False, chosen_at=now)
    if answer is None:
        # The answer shown last: chosen by hand, or else written (a new answer is shown).
        answer = (
            question.replies.filter(role=Message.Role.ASSISTANT)
            .order_by(Coalesce("chosen_at", "created_at").desc(), "-created_at")
            .first()
        )
    if answer is not None:
        Message.objects.filter(pk=answer.pk).update(superseded=False, chosen_at=now)


def conversation_rename(*, user, conversation: Conversation, title: str) -> Conversation:
    if conversation.owner_id != user.pk:
        raise ChatError("This conversation is not yours.")
    title = " ".join(title.split())[:200]
    if not title:
        raise ChatError("A title cannot be empty.")
    with transaction.atomic():
        conversation.title = title
        conversation.save(update_fields=["title", "updated_at"])
        _notify_conversation(conversation, "renamed")
    return conversation


def conversation_set_remember(*, user, conversation: Conversation, remember: bool) -> None:
    if conversation.owner_id != user.pk:
        raise ChatError("This conversation is not yours.")
    Conversation.objects.filter(pk=conversation.pk).update(remember=remember)
    conversation.remember = remember


def conversation_delete(*, user, conversation: Conversation) -> None:
    if conversation.owner_id != user.pk:
        raise ChatError("This conversation is not yours.")
    with transaction.atomic():
        event = conversation_event(conversation)
        conversation.delete()
        user_event_send(
            user_ids=user.pk, event={"type": "conversation.deleted", "conversation": event}
        )


def feedback_give(*, user, message: Message, rating: int, comment: str = "") -> Feedback:
    if message.conversation.owner_id != user.pk or message.role != Message.Role.ASSISTANT:
        raise ChatError("Feedback goes on your own answers.")
    if rating not in (Feedback.Rating.UP, Feedback.Rating.DOWN):
        raise ChatError("Rating must be up (1) or down (-1).")
    feedback, _ = Feedback.objects.update_or_create(
        message=message, user=user, defaults={"rating": rating, "comment": comment[:2000]}
    )
    return feedback
