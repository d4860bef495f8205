"""What the Slack door stores of its own. The link between a Slack user and an account is
``accounts.SlackIdentity`` (identities and the proof that links them are the accounts app's);
a Slack thread's conversation is an ordinary ``assistant.Conversation``."""

from django.db import models


class SlackEventReceipt(models.Model):
    """One delivery from Slack, recorded before any work so retries and duplicates are dropped."""

    class Kind(models.TextChoices):
        EVENT = "event", "Event"
        COMMAND = "command", "Slash command"
        INTERACTION = "interaction", "Interaction"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        HANDLING = "handling", "Being answered"
        ANSWERED = "answered", "Answered"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    key = models.CharField(
        max_length=200, unique=True, help_text="Slack's event id (or trigger id)."
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    # A run answering it holds a lease: a redelivered task (its worker died) may take over
    # only once the lease has run out, and only the run holding ``attempts`` may finish it.
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    reply_ts = models.CharField(
        max_length=32, blank=True, help_text="The placeholder message a later attempt updates."
    )

    class Meta:
        db_table = "assistant_slackeventreceipt"  # created by the assistant app's migrations

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"
