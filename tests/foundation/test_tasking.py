"""Enqueueing after commit when the broker is down (issue 15, fault 3): the rows are saved, the
request succeeds, the failure is logged, and the sweep every worker runs queues the work again
once the broker is back. The broker is really unreachable here: the Celery app is pointed at a
port nothing listens on."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from celery import Celery
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from assistant import services
from assistant.memory import extraction
from assistant.models import Message
from assistant.project import sweeping
from assistant.project.celery import app
from assistant.slack.models import SlackEventReceipt
from knowledge.models import Source
from tests.support.events import queued_tasks
from tests.support.knowledge import make_collection
from tests.support.processes import free_port
from tests.support.slack import SECRET, TOKEN, direct_message, post_event

pytestmark = pytest.mark.django_db(transaction=True)

MARKDOWN = b"# Deploying\n\nRun the deploy script from the release branch.\n"


@pytest.fixture
def broker_down():
    """This thread's Celery app (the one services enqueue through) talks to a dead port."""
    dead = Celery("assistant", set_as_current=False)
    dead.config_from_object("django.conf:settings", namespace="CELERY")
    dead.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    dead.autodiscover_tasks()
    # Now, not inside the test: importing the tasks runs django.setup() again (Celery's Django
    # fixup), which reconfigures logging and would unhook pytest's log capture.
    dead.loader.import_default_modules()
    dead.set_current()
    yield
    app.set_current()
    dead.close()


@pytest.fixture
def empty_ingest_queue():
    """Tasks earlier tests of this process left on the shared broker (no worker ran them)."""
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete("ingest")


@pytest.fixture
def empty_default_queue():
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete("default")


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_an_upload_while_the_broker_is_down_is_saved_and_answered_not_a_500(
    client, admin, media_root, broker_down, caplog
):
    collection = make_collection("Runbooks", everyone=True)
    client.force_login(admin)
    file = SimpleUploadedFile("deploy.md", MARKDOWN, content_type="text/markdown")
    with caplog.at_level(logging.ERROR, logger="assistant.project.tasking"):
        response = client.post(f"/knowledge/collections/{collection.pk}/upload", {"file": file})

    assert response.status_code == 200
    source = Source.objects.get(collection=collection)
    assert source.status == Source.Status.QUEUED
    (record,) = [r for r in caplog.records if r.name == "assistant.project.tasking"]
    assert record.task == "knowledge.index_source" and record.task_args == [str(source.pk)]


def _queued_source(collection, name: str, *, waited_seconds: float) -> Source:
    source = Source.objects.create(
        collection=collection, kind=Source.Kind.FILE, name=name, status=Source.Status.QUEUED
    )
    then = timezone.now() - timedelta(seconds=waited_seconds)
    Source.objects.filter(pk=source.pk).update(updated_at=then)
    return source


def test_the_sweep_requeues_a_source_whose_task_was_lost_once(settings, empty_ingest_queue):
    settings.INDEXING_REQUEUE_AFTER_SECONDS = 60
    collection = make_collection("Runbooks", everyone=True)
    lost = _queued_source(collection, "lost.md", waited_seconds=120)
    _queued_source(collection, "recent.md", waited_seconds=5)  # not yet: it may be on its way

    with queued_tasks() as tasks:
        assert sweeping.sweep()["sources"] == [lost.pk]
        # Claimed: the next tick (here, or on another worker) does not queue it again.
        assert sweeping.sweep()["sources"] == []
    assert [t.args for t in tasks.named("knowledge.index_source")] == [(lost.pk,)]


def test_the_sweep_leaves_sources_waiting_behind_a_backlog_alone(settings, empty_ingest_queue):
    settings.INDEXING_REQUEUE_AFTER_SECONDS = 60
    collection = make_collection("Runbooks", everyone=True)
    waiting = _queued_source(collection, "waiting.md", waited_seconds=600)
    app.send_task("knowledge.index_source", args=[waiting.pk])  # its task is still queued

    with queued_tasks() as tasks:
        assert sweeping.sweep()["sources"] == []
    assert tasks == []


def test_the_sweep_survives_a_broker_that_is_down(settings, broker_down, caplog):
    settings.INDEXING_REQUEUE_AFTER_SECONDS = 60
    collection = make_collection("Runbooks", everyone=True)
    lost = _queued_source(collection, "lost.md", waited_seconds=120)

    with caplog.at_level(logging.WARNING, logger="assistant.project.sweeping"):
        assert sweeping.sweep() == {"sources": [], "slack_receipts": [], "after_turns": []}
    assert any("sweep" in r.getMessage() for r in caplog.records)
    # Nothing claimed: the next tick after the broker is back still finds it.
    assert Source.objects.get(pk=lost.pk).updated_at < timezone.now() - timedelta(seconds=60)


# --- Slack questions ----------------------------------------------------------------------


@pytest.fixture
def slack_settings(settings):
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_REQUEUE_AFTER_SECONDS = 60
    settings.SLACK_REQUEUE_MAX_AGE_SECONDS = 3600


def _received_ago(key: str, seconds: float) -> None:
    SlackEventReceipt.objects.filter(key=key).update(
        received_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_slack_question_saved_while_the_broker_was_down_is_queued_again_by_the_sweep(
    client, slack_settings, broker_down, caplog
):
    with caplog.at_level(logging.ERROR, logger="assistant.project.tasking"):
        response = post_event(client, direct_message(event_id="EvLost"))
    assert response.status_code == 200  # Slack is told it arrived: it will not send it again
    receipt = SlackEventReceipt.objects.get(key="event:EvLost")
    assert receipt.status == SlackEventReceipt.Status.RECEIVED
    assert any(r.name == "assistant.project.tasking" for r in caplog.records)

    # The broker is back (the fixture's app is gone below), a minute later.
    app.set_current()
    _received_ago("event:EvLost", 120)
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete("default")
    with queued_tasks() as tasks:
        assert sweeping.sweep()["slack_receipts"] == [receipt.pk]
    assert [t.args for t in tasks.named("assistant.slack.answer")] == [(receipt.pk,)]


def test_the_sweep_leaves_recent_answered_and_hour_old_slack_questions_alone(
    client, slack_settings, empty_default_queue
):
    from assistant.slack.services import receipt_record

    for key, ago in (("event:Recent", 5), ("event:Stale", 7200), ("event:Done", 120)):
        receipt_record(key=key, kind=SlackEventReceipt.Kind.EVENT, payload={})
        _received_ago(key, ago)
    SlackEventReceipt.objects.filter(key="event:Done").update(
        status=SlackEventReceipt.Status.ANSWERED
    )
    with queued_tasks() as tasks:
        assert sweeping.sweep()["slack_receipts"] == []
    assert tasks.named("assistant.slack.answer") == []


def test_the_sweep_leaves_slack_questions_waiting_behind_queued_work_alone(
    slack_settings, empty_default_queue
):
    from assistant.slack.services import receipt_record

    receipt = receipt_record(key="event:Waiting", kind=SlackEventReceipt.Kind.EVENT, payload={})
    _received_ago("event:Waiting", 120)
    app.send_task("assistant.slack.answer", args=[receipt.pk])  # its task is still queued
    with queued_tasks() as tasks:
        assert sweeping.sweep()["slack_receipts"] == []
    assert tasks == []


# --- after-turn work (memory learning, summaries) -----------------------------------------


def _answer(user, *, learn: bool = True) -> Message:
    question = services.question_create(user=user, conversation=None, text="I live in Lyon.")
    answer = services.answer_start(question=question, sources=[])
    return services.answer_finish(
        message_id=answer.pk, content="Noted.", status=Message.Status.COMPLETE, learn=learn
    )


def _broker_loses_the_default_queue() -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete("default")


def _due_ago(answer: Message, seconds: float) -> None:
    Message.objects.filter(pk=answer.pk).update(
        after_turn_due_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_an_answer_owes_its_after_turn_work_until_the_task_has_run(make_user):
    person = make_user()
    owed, shared = _answer(person), _answer(person, learn=False)  # a Slack channel's answer

    assert Message.objects.get(pk=owed.pk).after_turn_due_at is not None
    assert Message.objects.get(pk=shared.pk).after_turn_due_at is None  # never learned from

    extraction.after_turn(answer_id=str(owed.pk))

    assert Message.objects.get(pk=owed.pk).after_turn_due_at is None


def test_the_sweep_requeues_after_turn_work_whose_task_was_lost_once(
    settings, make_user, empty_default_queue
):
    settings.AFTER_TURN_REQUEUE_AFTER_SECONDS = 300
    settings.AFTER_TURN_REQUEUE_MAX_AGE_SECONDS = 86400
    person = make_user()
    lost, recent, old = _answer(person), _answer(person), _answer(person)
    _due_ago(lost, 600)
    _due_ago(recent, 5)  # its task may still be on its way
    _due_ago(old, 600)
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    _broker_loses_the_default_queue()  # what the answers enqueued never reaches a worker

    with queued_tasks() as tasks:
        assert sweeping.sweep()["after_turns"] == [str(lost.pk)]
        # Claimed: the next tick (here, or on another worker) does not queue it again.
        assert sweeping.sweep()["after_turns"] == []
    assert [t.args for t in tasks.named("assistant.after_turn")] == [(str(lost.pk),)]
    assert Message.objects.get(pk=old.pk).after_turn_due_at is None  # too old: no longer owed


def test_the_sweep_leaves_after_turn_work_waiting_behind_queued_tasks_alone(
    settings, make_user, empty_default_queue
):
    settings.AFTER_TURN_REQUEUE_AFTER_SECONDS = 300
    waiting = _answer(make_user())
    _due_ago(waiting, 600)
    _broker_loses_the_default_queue()
    app.send_task("assistant.after_turn", args=[str(waiting.pk)])  # its task is still queued

    with queued_tasks() as tasks:
        assert sweeping.sweep()["after_turns"] == []
    assert tasks == []
