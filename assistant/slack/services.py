"""Slack workflows: record deliveries once, map Slack users to accounts, answer in threads.

The answer itself comes from the same pipeline as every other door, run as the mapped account,
so the same permissions apply.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import SlackIdentity
from assistant import services
from assistant.answering.pipeline import answer_stream
from assistant.models import Conversation, Message, SlackEventReceipt
from assistant.slack import client, formatting
from knowledge.models import Collection

logger = logging.getLogger(__name__)

PROVISIONAL_DOMAIN = "slack.invalid"
LINK_HELP = (
    "I couldn't match your Slack account to an account of this assistant, so I can't answer "
    "from the company's knowledge yet. Sign in once at {url} with the same email address as in "
    "Slack, then ask me again."
)


# --- deliveries ---------------------------------------------------------------------------


def receipt_record(*, key: str, kind: str, payload: dict) -> SlackEventReceipt | None:
    """Records a delivery; ``None`` when it was seen before (a retry or a duplicate)."""
    try:
        with transaction.atomic():
            return SlackEventReceipt.objects.create(key=key[:200], kind=kind, payload=payload)
    except IntegrityError:
        return None


def receipt_enqueue(receipt: SlackEventReceipt) -> None:
    from assistant.slack.tasks import answer_in_slack

    transaction.on_commit(lambda: answer_in_slack.delay(receipt.pk))


def _receipt_claim(receipt_id: int) -> SlackEventReceipt | None:
    """Marks the receipt as being handled; ``None`` when another run already did (idempotent)."""
    updated = SlackEventReceipt.objects.filter(pk=receipt_id, status=SlackEventReceipt.Status.RECEIVED).update(
        status=SlackEventReceipt.Status.ANSWERED, handled_at=timezone.now()
    )
    return SlackEventReceipt.objects.get(pk=receipt_id) if updated else None


def _receipt_fail(receipt: SlackEventReceipt, error: str) -> None:
    SlackEventReceipt.objects.filter(pk=receipt.pk).update(status=SlackEventReceipt.Status.FAILED, error=error[:2000])


# --- identities ---------------------------------------------------------------------------


def account_for_slack_user(*, team_id: str, slack_user_id: str):
    """The account a Slack user acts as, or ``None`` when unlinked and unlinked users are refused."""
    identity, _ = SlackIdentity.objects.get_or_create(team_id=team_id, slack_user_id=slack_user_id)
    if identity.user_id and not _is_provisional(identity.user):
        return identity.user
    info = client.user_info(slack_user_id)
    User = get_user_model()
    user = User.objects.filter(email__iexact=info.email, is_active=True).first() if info.email else None
    if user is None and settings.SLACK_UNLINKED_USERS == "public":
        user = identity.user or User.objects.create_user(
            email=f"slack+{team_id}-{slack_user_id}@{PROVISIONAL_DOMAIN}".lower(), full_name=info.name
        )
    SlackIdentity.objects.filter(pk=identity.pk).update(user=user, email=info.email, display_name=info.name[:200])
    return user


def _is_provisional(user) -> bool:
    return user.email.endswith("@" + PROVISIONAL_DOMAIN)


# --- answering ----------------------------------------------------------------------------


def _conversation_for_thread(user, *, team: str, channel: str, thread_ts: str) -> tuple[Conversation, bool]:
    conversation = Conversation.objects.filter(
        slack_team=team, slack_channel=channel, slack_thread_ts=thread_ts
    ).first()
    if conversation is not None and conversation.owner_id == user.pk:
        return conversation, False
    if conversation is not None:
        # Someone else's thread: this person gets their own conversation for it.
        thread_ts = f"{thread_ts}:{user.pk}"
        found = Conversation.objects.filter(slack_team=team, slack_channel=channel, slack_thread_ts=thread_ts).first()
        if found is not None:
            return found, False
    return Conversation.objects.create(
        owner=user, origin=Conversation.Origin.SLACK, slack_team=team, slack_channel=channel,
        slack_thread_ts=thread_ts,
    ), True


def _seed_from_thread(conversation: Conversation, *, channel: str, thread_ts: str, current_ts: str) -> None:
    """A conversation started inside an existing thread takes the thread's earlier messages as context."""
    try:
        earlier = [m for m in client.thread_messages(channel, thread_ts) if m.ts != current_ts and m.text]
    except client.SlackAPIError:
        logger.warning("could not read the Slack thread", exc_info=True)
        return
    Message.objects.bulk_create(
        [
            Message(conversation=conversation, role=Message.Role.ASSISTANT if m.is_bot else Message.Role.USER,
                    content=formatting.strip_mention(m.text)[:4000])
            for m in earlier[-10:]
        ]
    )


def handle_receipt(*, receipt_id: int) -> None:
    """Answers one recorded delivery. Safe to run twice: a second run finds it claimed."""
    receipt = _receipt_claim(receipt_id)
    if receipt is None:
        return
    try:
        if receipt.kind == SlackEventReceipt.Kind.COMMAND:
            _answer_command(receipt)
        else:
            _answer_event(receipt)
    except client.SlackAPIError as exc:
        logger.warning("Slack answer failed", extra={"receipt": receipt.key, "error": str(exc)})
        _receipt_fail(receipt, str(exc))


def _answer_event(receipt: SlackEventReceipt) -> None:
    event = receipt.payload["event"]
    team = receipt.payload.get("team_id", "")
    channel, ts = event["channel"], event["ts"]
    thread_ts = event.get("thread_ts") or ts
    user = account_for_slack_user(team_id=team, slack_user_id=event["user"])
    if user is None:
        client.post_message(channel, LINK_HELP.format(url=settings.APP_BASE_URL), thread_ts=thread_ts)
        return
    text = formatting.strip_mention(event.get("text", ""))
    if not text:
        client.post_message(channel, "Ask me a question about the company's knowledge.", thread_ts=thread_ts)
        return
    with transaction.atomic():
        conversation, created = _conversation_for_thread(user, team=team, channel=channel, thread_ts=thread_ts)
        if created and thread_ts != ts:
            _seed_from_thread(conversation, channel=channel, thread_ts=thread_ts, current_ts=ts)
    placeholder = client.post_message(channel, "_Looking through the company knowledge…_", thread_ts=thread_ts)
    if _is_direct_message(event):
        answer = _run_pipeline(user, conversation, text)
    else:
        # Everyone in the channel reads the answer, so it may only draw on knowledge open to
        # everyone (and still only on what the asker may read).
        answer = _run_pipeline(user, conversation, text, collection_ids=_open_collection_ids())
        answer.note = CHANNEL_NOTE
    client.update_message(channel, placeholder.ts, answer.fallback_text, blocks=answer.blocks)


CHANNEL_NOTE = (
    "_In channels I only use knowledge open to everyone. Message me directly to include what "
    "only you can read._"
)


def _is_direct_message(event: dict) -> bool:
    return event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")


def _open_collection_ids() -> list[int]:
    return list(
        Collection.objects.filter(visibility=Collection.Visibility.EVERYONE).values_list("id", flat=True)
    )


def _answer_command(receipt: SlackEventReceipt) -> None:
    payload = receipt.payload
    user = account_for_slack_user(team_id=payload.get("team_id", ""), slack_user_id=payload["user_id"])
    if user is None:
        client.respond(payload["response_url"], LINK_HELP.format(url=settings.APP_BASE_URL))
        return
    text = (payload.get("text") or "").strip()
    if not text:
        client.respond(payload["response_url"], "Usage: /ask your question")
        return
    answer = _run_pipeline(user, None, text)
    client.respond(payload["response_url"], answer.fallback_text, blocks=answer.blocks)


class _SlackAnswer:
    def __init__(self) -> None:
        self.text = ""
        self.sources: list[dict] = []
        self.cited: set[int] = set()
        self.message_id: str | None = None
        self.error: str | None = None
        self.note = ""

    @property
    def fallback_text(self) -> str:
        return self.error or self.text or "(no answer)"

    @property
    def blocks(self) -> list[dict]:
        if self.error:
            note = f":warning: {self.error}"
            if self.sources:
                note += "\nPassages found (not generated):"
            return formatting.answer_blocks(
                text=note, sources=self.sources, message_id=None, note=self.note
            )
        shown = [s for s in self.sources if s["n"] in self.cited] or self.sources
        return formatting.answer_blocks(
            text=self.text, sources=shown, message_id=self.message_id, note=self.note
        )


def _run_pipeline(
    user, conversation: Conversation | None, text: str, collection_ids: list[int] | None = None
) -> _SlackAnswer:
    question = services.question_create(
        user=user, conversation=conversation, text=text[: settings.CHAT_MAX_QUESTION_CHARS],
        origin=Conversation.Origin.SLACK,
    )
    result = _SlackAnswer()

    async def consume():
        async for event in answer_stream(user=user, question=question, collection_ids=collection_ids):
            if event.type == "retrieval":
                result.sources, result.message_id = event.sources, event.message_id
            elif event.type == "delta":
                result.text += event.text
            elif event.type == "citation":
                result.cited.add(event.number)
            elif event.type == "error":
                result.error = event.message

    asyncio.run(consume())
    return result


# --- feedback -----------------------------------------------------------------------------


def feedback_from_button(*, team_id: str, slack_user_id: str, value: str) -> bool:
    """Records a 👍/👎 click. Only the person the answer was for can rate it."""
    message_id, _, rating = value.partition(":")
    identity = SlackIdentity.objects.filter(team_id=team_id, slack_user_id=slack_user_id).select_related("user").first()
    if identity is None or identity.user is None or rating not in ("1", "-1"):
        return False
    message = Message.objects.filter(pk=_uuid_or_none(message_id), conversation__owner=identity.user).first()
    if message is None:
        return False
    services.feedback_give(user=identity.user, message=message, rating=int(rating))
    return True


def _uuid_or_none(value: str):
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None
