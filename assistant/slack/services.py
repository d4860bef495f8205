"""Slack workflows: record deliveries once, answer each under a lease, answer in threads.

The answer itself comes from the same pipeline as every other door, run as the mapped account
(see ``linking``), so the same permissions apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import SlackIdentity
from assistant import services
from assistant.answering.pipeline import answer_stream
from assistant.models import Conversation, Message
from assistant.project.tasking import enqueue_on_commit, waiting_count
from assistant.slack import client, formatting
from assistant.slack.linking import account_for_slack_user, is_provisional
from assistant.slack.models import SlackEventReceipt
from knowledge.selectors import collections_open_to_everyone_ids

logger = logging.getLogger(__name__)

LINK_HELP = (
    "I can't tell yet which account of this assistant your Slack account belongs to, so I can't "
    "answer from the company's knowledge. Open this link within 30 minutes, sign in and confirm: "
    "{url}\nIt works once, and only for you: don't share it."
)
PUBLIC_LINK_HELP = (
    "Until you link your Slack account I only answer from knowledge open to everyone. To link it, "
    "open this link within 30 minutes, sign in and confirm: {url}\nIt works once: don't share it."
)
CHANNEL_NOTE = (
    "_In channels I only use knowledge open to everyone. Message me directly to include what "
    "only you can read._"
)
PLACEHOLDER = "_Looking through the company knowledge…_"
THREAD_CONTEXT_MESSAGES = 20
THREAD_AUTHOR_LOOKUPS = 10


# --- deliveries ---------------------------------------------------------------------------


class LeaseHeld(Exception):
    """Another run holds the receipt's lease; try again in ``retry_in`` seconds."""

    def __init__(self, retry_in: float):
        super().__init__(f"leased for {retry_in:.0f} more seconds")
        self.retry_in = retry_in


def lease_seconds() -> int:
    """How long a run may hold a receipt: longer than the task's hard time limit, so a live run
    is never overtaken; a run whose worker died is taken over once it runs out."""
    return int(getattr(settings, "SLACK_ANSWER_LEASE_SECONDS", 360))


def receipt_record(*, key: str, kind: str, payload: dict) -> SlackEventReceipt | None:
    """Records a delivery; ``None`` when it was seen before (a retry or a duplicate)."""
    try:
        with transaction.atomic():
            return SlackEventReceipt.objects.create(key=key[:200], kind=kind, payload=payload)
    except IntegrityError:
        return None


def receipt_enqueue(receipt: SlackEventReceipt) -> None:
    enqueue_on_commit("assistant.slack.answer", receipt.pk)


def receipts_requeue_stuck(*, older_than_seconds: float, limit: int = 200) -> list[int]:
    """Queues again the Slack questions still ``received`` for longer than ``older_than_seconds``
    (and younger than ``SLACK_REQUEUE_MAX_AGE_SECONDS``) while nothing waits in their queue: their
    task was lost (the broker was down when the webhook saved them, or restarted without
    persistence). Returns their ids.

    Two workers sweeping at once may both queue one: the runs claim a lease on the receipt, so it
    is answered once. A question older than the age limit is left unanswered: an answer an hour
    late, in a thread that moved on, helps nobody."""
    if waiting_count("assistant.slack.answer"):
        return []
    now = timezone.now()
    ids = list(
        SlackEventReceipt.objects.filter(
            status=SlackEventReceipt.Status.RECEIVED,
            received_at__lt=now - timedelta(seconds=older_than_seconds),
            received_at__gte=now - timedelta(seconds=settings.SLACK_REQUEUE_MAX_AGE_SECONDS),
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        enqueue_on_commit("assistant.slack.answer", pk)
    if ids:
        logger.warning("re-queued Slack questions whose task was lost", extra={"receipts": ids})
    return ids


def _receipt_claim(receipt_id: int) -> SlackEventReceipt | None:
    """Takes the lease on a receipt not answered yet (or whose last run's lease ran out).

    ``None`` when there is nothing left to do; ``LeaseHeld`` when another run is on it."""
    now = timezone.now()
    claimable = Q(status=SlackEventReceipt.Status.RECEIVED) | Q(
        status=SlackEventReceipt.Status.HANDLING, lease_until__lt=now
    )
    updated = SlackEventReceipt.objects.filter(claimable, pk=receipt_id).update(
        status=SlackEventReceipt.Status.HANDLING,
        lease_until=now + timedelta(seconds=lease_seconds()),
        attempts=F("attempts") + 1,
    )
    if updated:
        return SlackEventReceipt.objects.get(pk=receipt_id)
    current = (
        SlackEventReceipt.objects.filter(pk=receipt_id).values("status", "lease_until").first()
    )
    if (
        current
        and current["status"] == SlackEventReceipt.Status.HANDLING
        and current["lease_until"]
    ):
        raise LeaseHeld(max((current["lease_until"] - now).total_seconds(), 0.0))
    return None


def _receipt_finish(receipt: SlackEventReceipt, status: str, error: str = "") -> None:
    """Ends this run's lease; a run that lost it (it ran past it and was overtaken) changes nothing."""
    SlackEventReceipt.objects.filter(
        pk=receipt.pk, status=SlackEventReceipt.Status.HANDLING, attempts=receipt.attempts
    ).update(status=status, error=error[:2000], handled_at=timezone.now(), lease_until=None)


def handle_receipt(*, receipt_id: int) -> None:
    """Answers one recorded delivery. Safe to run twice: a second run finds it answered, or
    leased by a live run (``LeaseHeld``), or takes over from a run whose worker died."""
    receipt = _receipt_claim(receipt_id)
    if receipt is None:
        return
    try:
        if receipt.kind == SlackEventReceipt.Kind.COMMAND:
            status = _answer_command(receipt)
        else:
            status = _answer_event(receipt)
    except client.SlackAPIError as exc:
        logger.warning("Slack answer failed", extra={"receipt": receipt.key, "error": str(exc)})
        _receipt_finish(receipt, SlackEventReceipt.Status.FAILED, str(exc))
    except Exception as exc:
        _receipt_finish(receipt, SlackEventReceipt.Status.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    else:
        _receipt_finish(receipt, status)


# --- answering ----------------------------------------------------------------------------


def _conversation_for_thread(user, *, team: str, channel: str, thread_ts: str) -> Conversation:
    conversation = Conversation.objects.filter(
        slack_team=team, slack_channel=channel, slack_thread_ts=thread_ts
    ).first()
    if conversation is not None and conversation.owner_id == user.pk:
        return conversation
    if conversation is not None:
        # Someone else's thread: this person gets their own conversation for it.
        thread_ts = f"{thread_ts}:{user.pk}"
        found = Conversation.objects.filter(
            slack_team=team, slack_channel=channel, slack_thread_ts=thread_ts
        ).first()
        if found is not None:
            return found
    return Conversation.objects.create(
        owner=user,
        origin=Conversation.Origin.SLACK,
        slack_team=team,
        slack_channel=channel,
        slack_thread_ts=thread_ts,
    )


def _is_direct_message(event: dict) -> bool:
    return event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")


def _tell(event: dict, text: str, *, thread_ts: str) -> None:
    """A reply only the asker should see: ephemeral in a channel, a plain reply in a DM."""
    if _is_direct_message(event):
        client.post_message(event["channel"], text, thread_ts=thread_ts)
    else:
        client.post_ephemeral(event["channel"], event["user"], text, thread_ts=thread_ts)


def _answer_event(receipt: SlackEventReceipt) -> str:
    event = receipt.payload["event"]
    team = receipt.payload.get("team_id", "")
    channel, ts = event["channel"], event["ts"]
    thread_ts = event.get("thread_ts") or ts
    mapped = account_for_slack_user(team_id=team, slack_user_id=event["user"])
    if mapped.user is None:
        _tell(
            event,
            LINK_HELP.format(url=mapped.link_url)
            if mapped.link_url
            else "I can't answer you here.",
            thread_ts=thread_ts,
        )
        return SlackEventReceipt.Status.IGNORED
    if mapped.link_url:
        _tell(event, PUBLIC_LINK_HELP.format(url=mapped.link_url), thread_ts=thread_ts)
    user = mapped.user
    text = formatting.strip_mention(event.get("text", ""))
    if not text:
        client.post_message(
            channel, "Ask me a question about the company's knowledge.", thread_ts=thread_ts
        )
        return SlackEventReceipt.Status.ANSWERED
    try:
        services.rate_limit_check(user=user)
    except services.RateLimited as exc:
        _tell(event, formatting.escape(str(exc)), thread_ts=thread_ts)
        return SlackEventReceipt.Status.IGNORED
    shared = not _is_direct_message(event)
    # Read before anything is posted, so our own placeholder is not part of it.
    context = _thread_context(channel, thread_ts=thread_ts, current_ts=ts) if shared else []
    with transaction.atomic():
        conversation = _conversation_for_thread(
            user, team=team, channel=channel, thread_ts=thread_ts
        )
    reply_ts = receipt.reply_ts or _post_placeholder(receipt, channel, thread_ts)
    if shared:
        # Everyone in the channel reads the answer: only knowledge open to everyone (and still
        # only what the asker may read), and nothing private (memory, history) in the prompt.
        answer = _run_pipeline(
            user,
            conversation,
            text,
            collection_ids=collections_open_to_everyone_ids(),
            shared=True,
            thread_context=context,
        )
        answer.note = CHANNEL_NOTE
    else:
        answer = _run_pipeline(user, conversation, text)
    client.update_message(channel, reply_ts, answer.fallback_text, blocks=answer.blocks)
    return SlackEventReceipt.Status.ANSWERED


def _post_placeholder(receipt: SlackEventReceipt, channel: str, thread_ts: str) -> str:
    """Posts "looking…" and remembers it, so a run taking over updates it instead of posting again."""
    posted = client.post_message(channel, PLACEHOLDER, thread_ts=thread_ts)
    SlackEventReceipt.objects.filter(pk=receipt.pk, attempts=receipt.attempts).update(
        reply_ts=posted.ts[:32]
    )
    return posted.ts


def _thread_context(channel: str, *, thread_ts: str, current_ts: str) -> list[tuple[str, str]]:
    """The thread's earlier messages as (author, text): quoted context, never the asker's turns."""
    if thread_ts == current_ts:
        return []
    try:
        messages = client.thread_messages(channel, thread_ts)
        bot_user = client.bot_user_id()
    except client.SlackAPIError:
        logger.warning("could not read the Slack thread", exc_info=True)
        return []
    earlier = [m for m in messages if m.text and _ts_before(m.ts, current_ts)][
        -THREAD_CONTEXT_MESSAGES:
    ]
    names: dict[str, str] = {}
    context = []
    for message in earlier:
        if message.is_bot:
            author = "assistant" if message.user == bot_user or not message.user else "a bot"
        else:
            author = _author_name(message.user, names)
        context.append((author, formatting.strip_mention(message.text)))
    return context


def _ts_before(ts: str, current: str) -> bool:
    try:
        return float(ts) < float(current)
    except ValueError:
        return False


def _author_name(slack_user_id: str, names: dict[str, str]) -> str:
    if slack_user_id not in names:
        name = slack_user_id or "someone"
        if slack_user_id and len(names) < THREAD_AUTHOR_LOOKUPS:
            with contextlib.suppress(client.SlackAPIError):  # the id will do
                name = client.user_info(slack_user_id).name or slack_user_id
        names[slack_user_id] = name
    return names[slack_user_id]


def _answer_command(receipt: SlackEventReceipt) -> str:
    payload = receipt.payload
    url = payload["response_url"]
    mapped = account_for_slack_user(
        team_id=payload.get("team_id", ""), slack_user_id=payload["user_id"]
    )
    if mapped.user is None:
        client.respond(
            url,
            LINK_HELP.format(url=mapped.link_url)
            if mapped.link_url
            else "I can't answer you here.",
        )
        return SlackEventReceipt.Status.IGNORED
    text = (payload.get("text") or "").strip()
    if not text:
        client.respond(url, "Usage: /ask your question")
        return SlackEventReceipt.Status.ANSWERED
    try:
        services.rate_limit_check(user=mapped.user)
    except services.RateLimited as exc:
        client.respond(url, formatting.escape(str(exc)))
        return SlackEventReceipt.Status.IGNORED
    answer = _run_pipeline(mapped.user, None, text)
    if mapped.link_url:
        answer.note = formatting.escape(PUBLIC_LINK_HELP.format(url=mapped.link_url))
    client.respond(url, answer.fallback_text, blocks=answer.blocks)
    return SlackEventReceipt.Status.ANSWERED


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
        """The notification text: the same escaping as the blocks (it is mrkdwn too)."""
        return formatting.truncate(formatting.to_mrkdwn(self.error or self.text or "(no answer)"))

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
    user,
    conversation: Conversation | None,
    text: str,
    collection_ids: list[int] | None = None,
    *,
    shared: bool = False,
    thread_context: list[tuple[str, str]] = (),
) -> _SlackAnswer:
    question = services.question_create(
        user=user,
        conversation=conversation,
        text=text[: settings.CHAT_MAX_QUESTION_CHARS],
        origin=Conversation.Origin.SLACK,
    )
    result = _SlackAnswer()

    async def consume():
        stream = answer_stream(
            user=user,
            question=question,
            collection_ids=collection_ids,
            shared=shared,
            thread_context=list(thread_context),
        )
        async for event in stream:
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
    identity = (
        SlackIdentity.objects.filter(team_id=team_id, slack_user_id=slack_user_id)
        .select_related("user")
        .first()
    )
    if identity is None or identity.user is None or rating not in ("1", "-1"):
        return False
    if not (identity.linked_at or is_provisional(identity)):
        return False  # a link made by email before it was checked is no proof
    message = Message.objects.filter(
        pk=_uuid_or_none(message_id), conversation__owner=identity.user
    ).first()
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
