"""The retention policy (assistant/privacy/retention.py): what each RETENTION_*_DAYS deletes,
what it keeps, in batches, and the command and task that apply it."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.audit import Action, audit_record
from accounts.models import AuditEvent
from assistant import celery_app, services
from assistant.models import Citation, Conversation, Feedback, MemoryItem, Message
from assistant.privacy import retention, tasks
from assistant.privacy.retention import retention_apply, retention_plan
from assistant.slack.models import SlackEventReceipt
from tests.support import processes

pytestmark = pytest.mark.django_db

POLICY = (
    "RETENTION_CONVERSATION_DAYS",
    "RETENTION_SLACK_DAYS",
    "RETENTION_FEEDBACK_DAYS",
    "RETENTION_AUDIT_DAYS",
)


@pytest.fixture(autouse=True)
def _no_policy(settings):
    """Every test starts from "unset = keep", whatever the environment running the suite says."""
    for name in POLICY:
        setattr(settings, name, None)


def ago(days: float):
    return timezone.now() - timedelta(days=days)


def conversation(owner, *, idle_days: float, origin: str = "web", turns: int = 1) -> Conversation:
    """A conversation whose last activity (itself and every message) was ``idle_days`` ago."""
    conv = Conversation.objects.create(owner=owner, origin=origin, title=f"idle {idle_days}")
    for i in range(turns):
        question = Message.objects.create(conversation=conv, role="user", content=f"q{i}")
        Message.objects.create(
            conversation=conv, role="assistant", content=f"a{i}", reply_to=question
        )
    when = ago(idle_days)
    Message.objects.filter(conversation=conv).update(created_at=when, updated_at=when)
    Conversation.objects.filter(pk=conv.pk).update(created_at=when, updated_at=when)
    return conv


def answer_of(conv: Conversation) -> Message:
    return conv.messages.filter(role="assistant").first()


def receipt(key: str, *, days: float) -> SlackEventReceipt:
    row = SlackEventReceipt.objects.create(key=key, kind="event", payload={"text": "hi"})
    SlackEventReceipt.objects.filter(pk=row.pk).update(received_at=ago(days))
    return row


def retention_events():
    return AuditEvent.objects.filter(action=Action.RETENTION_APPLIED)


def test_unset_keeps_everything_and_records_nothing(make_user):
    ada = make_user()
    conv = conversation(ada, idle_days=3000)
    Feedback.objects.create(message=answer_of(conv), user=ada, rating=-1)
    Feedback.objects.filter(user=ada).update(updated_at=ago(3000))
    receipt("Ev1", days=3000)
    AuditEvent.objects.create(action=Action.SOURCE_DELETED, created_at=ago(3000))

    report = retention_apply()

    assert not report.active
    assert Conversation.objects.count() == 1 and Feedback.objects.count() == 1
    assert SlackEventReceipt.objects.count() == 1 and AuditEvent.objects.count() == 1
    assert not retention_events().exists()


def test_a_conversation_used_recently_is_kept_however_old_it_is(settings, make_user):
    """Conversation days count from the last activity, not the creation."""
    settings.RETENTION_CONVERSATION_DAYS = 30
    ada = make_user()
    idle = conversation(ada, idle_days=31, turns=2)
    used_yesterday = conversation(ada, idle_days=400)
    Message.objects.create(conversation=used_yesterday, role="user", content="still here?")
    renamed_yesterday = conversation(ada, idle_days=400)
    Conversation.objects.filter(pk=renamed_yesterday.pk).update(updated_at=ago(1))
    fresh = conversation(ada, idle_days=29)

    report = retention_apply()

    kept = set(Conversation.objects.values_list("pk", flat=True))
    assert kept == {used_yesterday.pk, renamed_yesterday.pk, fresh.pk}
    assert not Message.objects.filter(conversation_id=idle.pk).exists()
    assert report.counts() == {"conversations": 1, "messages": 4}


def test_a_deleted_conversation_takes_its_citations_and_feedback_but_not_memory(
    settings, make_user
):
    settings.RETENTION_CONVERSATION_DAYS = 30
    ada = make_user()
    idle = conversation(ada, idle_days=90)
    answer = answer_of(idle)
    Citation.objects.create(message=answer, collection_id=1, number=1, quote="q")
    Feedback.objects.create(message=answer, user=ada, rating=1)
    memory = MemoryItem.objects.create(
        owner=ada, text="I work in Lyon", embedding=[0.1] * 384, source_message=answer
    )

    retention_apply()

    assert not Citation.objects.exists() and not Feedback.objects.exists()
    memory.refresh_from_db()  # the person's memory is theirs: kept, without its link
    assert memory.source_message_id is None


def test_dry_run_says_what_would_go_and_changes_nothing(settings, make_user):
    settings.RETENTION_CONVERSATION_DAYS = 30
    settings.RETENTION_AUDIT_DAYS = 365
    ada = make_user()
    for _ in range(3):
        conversation(ada, idle_days=60, turns=2)
    conversation(ada, idle_days=1)
    out = StringIO()

    call_command("retention", "--dry-run", stdout=out)

    text = out.getvalue()
    assert "dry run: nothing is deleted" in text
    assert "conversations: 3 with 12 message(s) would be deleted" in text
    cutoff = f"{ago(30):%Y-%m-%d}"
    assert f"last activity before {cutoff}" in text and "RETENTION_CONVERSATION_DAYS=30" in text
    assert "audit events: 0 would be deleted" in text
    assert "Slack deliveries: kept (RETENTION_SLACK_DAYS is not set)" in text
    assert Conversation.objects.count() == 4 and Message.objects.count() == 14
    assert not retention_events().exists()
    assert retention_plan().counts() == {"conversations": 3, "messages": 12, "audit_events": 0}


def test_the_command_deletes_and_says_how_many(settings, make_user):
    settings.RETENTION_CONVERSATION_DAYS = 30
    conversation(make_user(), idle_days=60)
    out = StringIO()

    call_command("retention", stdout=out)

    assert "conversations: 1 with 2 message(s) deleted" in out.getvalue()
    assert not Conversation.objects.exists()


def test_the_command_with_no_policy_says_everything_is_kept(make_user):
    conversation(make_user(), idle_days=3000)
    out = StringIO()
    call_command("retention", stdout=out)
    assert "No retention policy is set" in out.getvalue()
    assert Conversation.objects.count() == 1


def test_rows_are_deleted_in_batches_of_the_batch_size(settings, make_user):
    """Bounded transactions: 30 old conversations with a batch size of 7 are 5 deletes of at
    most 7, never one statement over all of them."""
    settings.RETENTION_CONVERSATION_DAYS = 30
    settings.RETENTION_BATCH_SIZE = 7
    ada = make_user()
    for _ in range(30):
        conversation(ada, idle_days=40)
    recent = [conversation(ada, idle_days=2) for _ in range(3)]

    with CaptureQueriesContext(connection) as queries:
        report = retention_apply()

    deletes = [
        q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "assistant_conversation"')
    ]
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert len(deletes) == 5
    assert all(len(uuid.findall(sql)) <= 7 for sql in deletes)
    assert report.batches["conversations"] == 5
    assert report.counts()["conversations"] == 30
    assert set(Conversation.objects.values_list("pk", flat=True)) == {c.pk for c in recent}


@pytest.mark.django_db(transaction=True)
def test_a_conversation_a_question_is_being_stored_in_is_skipped_not_deleted_under_it(
    settings, make_user
):
    """A person writes in a conversation idle past the cut-off just as retention runs: the
    question's transaction holds the conversation's row, so retention skips it (it is in use
    once the question commits) instead of deleting it under the person's feet."""
    settings.RETENTION_CONVERSATION_DAYS = 30
    ada = make_user()
    busy, idle = conversation(ada, idle_days=40), conversation(ada, idle_days=40)
    with psycopg.connect(processes.test_database_url()) as writer:
        writer.execute("SELECT 1 FROM assistant_conversation WHERE id = %s FOR UPDATE", [busy.pk])

        report = retention_apply()

        assert report.counts()["conversations"] == 1
        assert list(Conversation.objects.values_list("pk", flat=True)) == [busy.pk]
        writer.rollback()
    assert not Conversation.objects.filter(pk=idle.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_one_holds_the_lock_deletes_and_records_nothing(settings, make_user):
    settings.RETENTION_CONVERSATION_DAYS = 30
    old = conversation(make_user(), idle_days=40)
    with psycopg.connect(processes.test_database_url(), autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", [retention._LOCK_KEY])

        retention_apply()

        assert Conversation.objects.filter(pk=old.pk).exists()
        assert not retention_events().exists()
        other_run.execute("SELECT pg_advisory_unlock(%s)", [retention._LOCK_KEY])

    retention_apply()
    assert not Conversation.objects.filter(pk=old.pk).exists()


def test_a_question_in_a_conversation_retention_just_deleted_is_not_found(settings, make_user):
    settings.RETENTION_CONVERSATION_DAYS = 30
    ada = make_user()
    old = conversation(ada, idle_days=40)
    retention_apply()

    with pytest.raises(Conversation.DoesNotExist):
        services.question_create(user=ada, conversation=old, text="Still there?")
    assert not Message.objects.filter(content="Still there?").exists()


def test_the_slack_policy_covers_slack_threads_and_deliveries_only(settings, make_user):
    settings.RETENTION_SLACK_DAYS = 10
    ada = make_user()
    web = conversation(ada, idle_days=100)
    slack_old = conversation(ada, idle_days=11, origin="slack")
    slack_new = conversation(ada, idle_days=9, origin="slack")
    receipt("Ev-old", days=11)
    receipt("Ev-new", days=9)

    report = retention_apply()

    assert set(Conversation.objects.values_list("pk", flat=True)) == {web.pk, slack_new.pk}
    assert not Conversation.objects.filter(pk=slack_old.pk).exists()
    assert list(SlackEventReceipt.objects.values_list("key", flat=True)) == ["Ev-new"]
    assert report.counts() == {"slack_conversations": 1, "slack_receipts": 1, "messages": 2}


def test_the_feedback_policy_deletes_old_feedback_on_its_own(settings, make_user):
    settings.RETENTION_FEEDBACK_DAYS = 90
    ada = make_user()
    old_answer = answer_of(conversation(ada, idle_days=1))
    new_answer = answer_of(conversation(ada, idle_days=1))
    Feedback.objects.create(message=old_answer, user=ada, rating=-1, comment="wrong")
    Feedback.objects.filter(message=old_answer).update(updated_at=ago(91))
    Feedback.objects.create(message=new_answer, user=ada, rating=1)

    retention_apply()

    assert list(Feedback.objects.values_list("message_id", flat=True)) == [new_answer.pk]
    assert Message.objects.filter(pk=old_answer.pk).exists()  # the answer stays


def test_the_audit_policy_deletes_old_events_and_the_run_records_itself(settings, caplog):
    caplog.set_level(logging.INFO, logger="assistant.retention")
    settings.RETENTION_AUDIT_DAYS = 365
    settings.RETENTION_FEEDBACK_DAYS = 30
    old = AuditEvent.objects.create(action=Action.SOURCE_DELETED, created_at=ago(400))
    recent = audit_record(actor=None, action=Action.SOURCE_DELETED)

    retention_apply()
    retention_apply()  # a second run finds nothing more: one event per run

    runs = list(retention_events().order_by("id"))
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()
    assert len(runs) == 2
    assert runs[0].detail["deleted"] == {"feedback": 0, "audit_events": 1}
    assert runs[1].detail["deleted"] == {"feedback": 0, "audit_events": 0}
    assert runs[0].detail["days"] == {"RETENTION_FEEDBACK_DAYS": 30, "RETENTION_AUDIT_DAYS": 365}
    assert set(runs[0].detail["cutoffs"]) == {"feedback", "audit_events"}
    logged = [r for r in caplog.records if r.getMessage() == "retention applied"]
    assert [r.deleted for r in logged] == [runs[0].detail["deleted"], runs[1].detail["deleted"]]


def test_a_deleted_sources_record_stays_while_an_answer_still_quotes_it(settings, make_user):
    """Who may read a quote of a deleted source is decided by the collection it was deleted
    from, which only its audit record says: dropping that record would let the quote fall back
    to the collection it was cited from (a source moved to HR, then deleted, would be readable
    by everyone again)."""
    settings.RETENTION_AUDIT_DAYS = 365
    conv = conversation(make_user(), idle_days=1)
    Citation.objects.create(
        message=answer_of(conv), collection_id=1, source_id=77, number=1, quote="Salaries"
    )
    cited = AuditEvent.objects.create(
        action=Action.SOURCE_DELETED,
        target_type="knowledge.source",
        target_id="77",
        created_at=ago(400),
    )
    uncited = AuditEvent.objects.create(
        action=Action.SOURCE_DELETED,
        target_type="knowledge.source",
        target_id="78",
        created_at=ago(400),
    )
    other = AuditEvent.objects.create(
        action=Action.CONVERSATION_VIEWED, target_id="77", created_at=ago(400)
    )

    retention_apply()

    assert AuditEvent.objects.filter(pk=cited.pk).exists()
    assert not AuditEvent.objects.filter(pk__in=[uncited.pk, other.pk]).exists()

    Conversation.objects.filter(pk=conv.pk).delete()  # the last answer quoting it goes
    retention_apply()

    assert not AuditEvent.objects.filter(pk=cited.pk).exists()


def test_the_daily_task_applies_the_policy_and_beat_names_it(settings, make_user):
    settings.RETENTION_CONVERSATION_DAYS = 30
    conversation(make_user(), idle_days=60)

    assert tasks.retention_apply() == {"conversations": 1, "messages": 2}
    entry = settings.CELERY_BEAT_SCHEDULE["retention-daily"]
    assert entry["task"] == tasks.retention_apply.name
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] == 24 * 60 * 60
