"""The chat domain: conversations, their messages, the citations in answers, and feedback."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from pgvector.django import VectorField

from assistant.insights.models import GapResolution  # noqa: F401  (registers the model)


class Conversation(models.Model):
    class Origin(models.TextChoices):
        WEB = "web", "Web"
        SLACK = "slack", "Slack"
        CLI = "cli", "Command line"
        API = "api", "API"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.WEB)
    # For conversations held in a Slack thread: where to answer.
    slack_team = models.CharField(max_length=32, blank=True)
    slack_channel = models.CharField(max_length=32, blank=True)
    slack_thread_ts = models.CharField(max_length=32, blank=True)
    remember = models.BooleanField(
        default=True, help_text="Off: nothing from this conversation goes into the user's memory."
    )
    summary = models.TextField(
        blank=True, help_text="Older turns, summarised for long conversations."
    )
    summary_until = models.DateTimeField(
        null=True, blank=True, help_text="Messages up to this time are covered by the summary."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]
        permissions = [
            ("read_user_conversations", "Can read other users' conversations in the admin")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["slack_team", "slack_channel", "slack_thread_ts"],
                condition=~models.Q(slack_thread_ts=""),
                name="conversation_unique_slack_thread",
            )
        ]

    def __str__(self) -> str:
        return self.title or "New conversation"


class Message(models.Model):
    # ``model`` of an assistant turn an API client sent as history (``/v1/``): its words, not
    # ours; stored with no passages or citations and labelled as such wherever it is shown.
    CLIENT_WRITTEN = "api-client"

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        STOPPED = "stopped", "Stopped"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    # An answer replaced by "regenerate" or a question replaced by "edit" stays for the record.
    superseded = models.BooleanField(default=False)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    # Versions: the answers to one question (``reply_to``) are the versions of that answer; an
    # edited question is a later version of the turn's first question (``version_of``). Exactly
    # one version of each turn is on the conversation's path (``superseded=False``).
    version_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="later_versions"
    )
    # When this version was last chosen: bringing a question back brings back the answer
    # that was showing with it.
    chosen_at = models.DateTimeField(null=True, blank=True)
    sources = models.JSONField(
        default=list, blank=True, help_text="The passages retrieved for this answer, numbered."
    )
    memory_used = models.JSONField(
        default=list, blank=True, help_text="The memory items given to the model: [{id, text}]."
    )
    unsupported = models.JSONField(
        default=list,
        blank=True,
        help_text="Cited sentences their passages do not support: [{sentence, numbers, reason}].",
    )
    # An answer reused from an identical recent question (``answering.cache``): the answer it
    # copies, never shown to this reader (it belongs to someone else's conversation).
    from_cache = models.BooleanField(default=False)
    cached_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.CharField(max_length=200, blank=True)
    # When memory extraction finished with this answer's turn (``assistant.memory.extraction``):
    # set in the transaction that stores what was learned, so a redelivered or duplicated task
    # never learns from the same turn twice.
    learned_at = models.DateTimeField(null=True, blank=True)
    # The after-turn work (learning, summary) is owed for this answer since then: set with the
    # answer's end, cleared when the task has run. One still set minutes later lost its task
    # (the broker was down or restarted); the workers' sweep queues it again.
    after_turn_due_at = models.DateTimeField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    retrieval_ms = models.PositiveIntegerField(null=True, blank=True)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    total_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_conversation_time"),
            # Insights: a window of days reads only its rows (assistant.insights.selectors).
            models.Index(fields=["role", "created_at"], name="message_role_time"),
            # The sweep's look for after-turn work that lost its task: only the few owed rows.
            models.Index(
                fields=["after_turn_due_at"],
                name="message_after_turn_due",
                condition=models.Q(after_turn_due_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class Citation(models.Model):
    """A ``[n]`` marker in an answer resolved to the passage it points at.

    The quote and labels are copied so the answer stays readable if the source is deleted;
    ``collection_id`` lets display re-check that the reader may still see it.
    """

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="citations")
    chunk = models.ForeignKey(
        "knowledge.Chunk", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    collection_id = models.BigIntegerField()
    source_id = models.BigIntegerField(null=True)
    number = models.PositiveSmallIntegerField()
    quote = models.TextField()
    document_title = models.CharField(max_length=500, blank=True)
    source_name = models.CharField(max_length=300, blank=True)
    source_url = models.URLField(max_length=2000, blank=True)
    heading = models.CharField(max_length=500, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["message", "number"], name="citation_unique_number")
        ]

    def __str__(self) -> str:
        return f"[{self.number}] {self.source_name}"


class AnswerCacheEntry(models.Model):
    """An answer that may be given again, at once, to an identical question.

    ``key`` hashes everything the answer depended on: the normalised question, the exact set
    of collections the asker could read with each one's knowledge version, the model, the
    prompt and the retrieval settings (``assistant.answering.cache``). Only first questions
    answered with no memory, history or thread in the prompt are stored. Deleting the answer
    (its conversation) deletes the entry.
    """

    key = models.CharField(max_length=64, unique=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_index=True)
    last_hit_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key[:12]}… → {self.message_id}"


class Feedback(models.Model):
    class Rating(models.IntegerChoices):
        UP = 1, "Helpful"
        DOWN = -1, "Not helpful"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="feedback_one_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on {self.message_id}"


class MemoryItem(models.Model):
    """Something the assistant remembers about one person, used only in that person's answers."""

    class Kind(models.TextChoices):
        # How the person wants answers (length, language, format): sent with every answer.
        PREFERENCE = "preference", "How to answer"
        # Something about the person: sent only when it is relevant to the question.
        FACT = "fact", "About you"

    class Origin(models.TextChoices):
        PERSON = "person", "Written by you"
        LEARNED = "learned", "Learned automatically"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_items"
    )
    text = models.CharField(max_length=500)
    source_message = models.ForeignKey(
        Message,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The message it was learned from.",
    )
    embedding = VectorField(dimensions=384)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FACT)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.PERSON)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="memory_owner_recent")]
        permissions = [("read_user_memory", "Can read other users' memory in the admin")]

    def __str__(self) -> str:
        return self.text[:60]


class MemorySettings(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_settings"
    )
    paused = models.BooleanField(
        default=False, help_text="Paused: nothing new is remembered; nothing is used."
    )
    auto_learn = models.BooleanField(
        null=True,
        blank=True,
        help_text="Learn from what the person writes after each answer. "
        "Unset: the site's default (MEMORY_AUTO_LEARN).",
    )

    def __str__(self) -> str:
        return f"memory {'paused' if self.paused else 'on'} for {self.user_id}"
