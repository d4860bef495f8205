"""The retention policy: how long conversations, Slack deliveries, feedback and audit events
are kept (``RETENTION_*_DAYS``; unset keeps them), and the run that deletes what is older.

What each setting covers:

- ``RETENTION_CONVERSATION_DAYS``: web, CLI and API conversations whose last activity (the
  conversation's own change or any of its messages written or updated) is older. A
  conversation used yesterday is kept however old it is. Its messages, citations, the
  feedback on its answers and the answer cache entries made from them go with it; memory
  items learned from it stay (they are the person's, on the memory page) and lose their link.
- ``RETENTION_SLACK_DAYS``: the same for conversations held in Slack threads, and the Slack
  deliveries (``SlackEventReceipt``, which carry the message text) received before then.
- ``RETENTION_FEEDBACK_DAYS``: feedback rows last given before then, on their own (the answer
  stays).
- ``RETENTION_AUDIT_DAYS``: audit events written before then, except a source's deletion
  while a kept answer still cites that source (which collection it was deleted from decides
  who may read the quote). Every run that deletes records one ``retention.applied`` event with
  its counts, so the trail shows that it ran.

Rows are deleted ``RETENTION_BATCH_SIZE`` at a time, each batch in its own transaction, so a
year of backlog never becomes one huge DELETE holding locks; a run interrupted half-way leaves
whole batches done and the next run carries on. One run at a time (an advisory lock).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Exists, OuterRef, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.audit import Action, audit_record
from accounts.models import AuditEvent
from assistant.models import Citation, Conversation, Feedback, Message
from assistant.slack.models import SlackEventReceipt

logger = logging.getLogger("assistant.retention")

# pg_try_advisory_lock key: "retention" in ASCII, a fixed number no other lock uses.
_LOCK_KEY = 0x726574656E74696F


@dataclass(frozen=True)
class Kind:
    """One kind of row the policy deletes."""

    name: str
    label: str
    setting: str
    age: str  # what the cut-off compares, for people


KINDS = (
    Kind("conversations", "conversations", "RETENTION_CONVERSATION_DAYS", "last activity"),
    Kind("slack_conversations", "Slack conversations", "RETENTION_SLACK_DAYS", "last activity"),
    Kind("slack_receipts", "Slack deliveries", "RETENTION_SLACK_DAYS", "received"),
    Kind("feedback", "feedback", "RETENTION_FEEDBACK_DAYS", "last given"),
    Kind("audit_events", "audit events", "RETENTION_AUDIT_DAYS", "written"),
)


@dataclass(frozen=True)
class Line:
    """What the policy does to one kind: kept (no setting) or deleted before ``cutoff``."""

    kind: Kind
    days: int | None
    cutoff: datetime | None
    count: int  # to delete (a plan) or deleted (a run)
    messages: int = 0  # for conversations: the messages that go with them

    @property
    def kept(self) -> bool:
        return self.days is None


@dataclass
class Report:
    lines: list[Line]
    dry_run: bool
    batches: dict[str, int] = field(default_factory=dict)
    skipped: bool = False  # another run held the lock

    @property
    def active(self) -> bool:
        return any(not line.kept for line in self.lines)

    def counts(self) -> dict[str, int]:
        counts = {line.kind.name: line.count for line in self.lines if not line.kept}
        if any(line.messages for line in self.lines):
            counts["messages"] = sum(line.messages for line in self.lines)
        return counts


def _days(kind: Kind) -> int | None:
    return getattr(settings, kind.setting, None)


def _candidates(kind: Kind, cutoff: datetime) -> QuerySet:
    """The rows of ``kind`` older than ``cutoff``; re-applied at each batch's delete, so a
    conversation that came back to life since the batch was chosen is kept."""
    if kind.name in ("conversations", "slack_conversations"):
        recent = Message.objects.filter(conversation=OuterRef("pk"), updated_at__gte=cutoff)
        idle = Conversation.objects.filter(updated_at__lt=cutoff).exclude(Exists(recent))
        if kind.name == "slack_conversations":
            return idle.filter(origin=Conversation.Origin.SLACK)
        return idle.exclude(origin=Conversation.Origin.SLACK)
    if kind.name == "slack_receipts":
        return SlackEventReceipt.objects.filter(received_at__lt=cutoff)
    if kind.name == "feedback":
        return Feedback.objects.filter(updated_at__lt=cutoff)
    # A source's deletion is also what access to its quotes rests on (the collection it was
    # deleted from: knowledge.selectors.source_deletion_events): kept while any citation of
    # that source is, so a quote never falls back to the collection it was cited from.
    cited = (
        Citation.objects.filter(source_id__isnull=False)
        .annotate(target=Cast("source_id", CharField()))
        .values("target")
    )
    return AuditEvent.objects.filter(created_at__lt=cutoff).exclude(
        action=Action.SOURCE_DELETED, target_id__in=cited
    )


def retention_plan(*, now: datetime | None = None) -> Report:
    """What a run would delete now, per kind, without deleting anything."""
    now = now or timezone.now()
    lines = []
    for kind in KINDS:
        days = _days(kind)
        if days is None:
            lines.append(Line(kind, None, None, 0))
            continue
        cutoff = now - timedelta(days=days)
        rows = _candidates(kind, cutoff)
        messages = 0
        if kind.name.endswith("conversations"):
            messages = Message.objects.filter(conversation__in=rows.values("pk")).count()
        lines.append(Line(kind, days, cutoff, rows.count(), messages))
    return Report(lines=lines, dry_run=True)


def delete_in_batches(rows: QuerySet, *, batch_size: int) -> tuple[int, int, int]:
    """Deletes ``rows`` ``batch_size`` at a time, one transaction per batch.

    Returns (rows deleted, messages deleted with them, batches). Django's cascade runs inside
    each batch (messages, citations, feedback, cache entries), so a batch is whole or absent.
    """
    model = rows.model
    deleted = messages = batches = 0
    while True:
        with transaction.atomic():
            # Rows locked by a writer (a question being stored in a conversation) are skipped:
            # committed, it makes the conversation recent; the next run looks again.
            ids = list(
                rows.select_for_update(skip_locked=True, of=("self",))
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return deleted, messages, batches
            _, per_model = rows.filter(pk__in=ids).delete()
        # A row that came back to life between the SELECT and the DELETE is not deleted, and
        # no longer matches ``rows``, so the next batch never picks it again.
        batches += 1
        deleted += per_model.get(model._meta.label, 0)
        messages += per_model.get(Message._meta.label, 0) if model is not Message else 0


def retention_apply(*, now: datetime | None = None, batch_size: int | None = None) -> Report:
    """Deletes what the policy says is too old, kind by kind, in batches; logs and audits the
    counts. Nothing happens (and nothing is recorded) when no ``RETENTION_*`` is set."""
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    plan = KINDS
    report = Report(lines=[], dry_run=False)
    if all(_days(kind) is None for kind in plan):
        report.lines = [Line(kind, None, None, 0) for kind in plan]
        logger.info("retention: no policy set, nothing deleted")
        return report
    if not _lock():
        report.skipped = True
        report.lines = [Line(kind, _days(kind), None, 0) for kind in plan]
        logger.warning("retention: another run is in progress, this one did nothing")
        return report
    try:
        for kind in plan:
            days = _days(kind)
            if days is None:
                report.lines.append(Line(kind, None, None, 0))
                continue
            cutoff = now - timedelta(days=days)
            count, messages, batches = delete_in_batches(
                _candidates(kind, cutoff), batch_size=batch_size
            )
            report.lines.append(Line(kind, days, cutoff, count, messages))
            report.batches[kind.name] = batches
        _record(report)
    finally:
        _unlock()
    return report


def _record(report: Report) -> None:
    counts = report.counts()
    cutoffs = {
        line.kind.name: line.cutoff.isoformat() for line in report.lines if line.cutoff is not None
    }
    days = {line.kind.setting: line.days for line in report.lines if line.days is not None}
    # Written after the deletes, so the record of this run is never among what it deleted.
    with transaction.atomic():
        audit_record(
            actor=None,
            action=Action.RETENTION_APPLIED,
            detail={"deleted": counts, "cutoffs": cutoffs, "days": days},
        )
    logger.info("retention applied", extra={"deleted": counts, "cutoffs": cutoffs})


def _lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _unlock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
