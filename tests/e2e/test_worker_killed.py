"""A worker killed (SIGKILL, the whole process group, as the OOM killer or a lost machine would)
in the middle of a task: the other worker, already running, finishes the work exactly once.

Two real Celery workers share the queue; the test finds the one executing the task (Celery's
remote control), kills it while it waits on a real local server that stalls on purpose (the
embeddings endpoint while indexing, the model while learning from a turn), and the other takes
the task back once the visibility timeout has passed. The workers run with a visibility timeout
of a few seconds and look for such tasks every second (``CELERY_VISIBILITY_TIMEOUT``,
``CELERY_UNACKED_RESTORE_SECONDS``); in production they are an hour and a minute.

The Slack answer under the same fault is tests/e2e/test_slack_worker_killed.py (answered once, in
the first attempt's placeholder); the pool child killed under a live worker is
tests/knowledge/test_indexing_failures.py.
"""

from __future__ import annotations

import signal
import time

import pytest
from django.db import transaction

from assistant.models import MemoryItem, Message
from assistant.tasks import after_turn
from knowledge import services as knowledge_services
from knowledge.models import Chunk, Document, Source
from tests.support import processes
from tests.support.answering import scripted_env
from tests.support.fake_embeddings_server import FakeEmbeddingsServer, Scripted
from tests.support.knowledge import make_collection
from tests.support.memory import answered_turn, extraction_reply
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PARTS = 6
GUIDE = "# Guide\n\n" + "\n\n".join(
    f"## Part {i}\n\n"
    + " ".join(f"Paragraph {i} sentence {j} explains a detail of the process." for j in range(30))
    for i in range(1, PARTS + 1)
)
SAID = "I'm on the storage team and I work in Lisbon. How do I use zstd?"
FIRST, OTHER = "The user is on the storage team.", "The user works in Lisbon."


@pytest.fixture(scope="module")
def embeddings_server():
    with FakeEmbeddingsServer(dimensions=384) as server:
        yield server


@pytest.fixture(scope="module")
def llm():
    with ScriptedOpenAI(default=None) as server:
        yield server


@pytest.fixture(scope="module")
def worker_env(embeddings_server, llm) -> dict[str, str]:
    return dict(
        **scripted_env(llm),
        EMBEDDINGS_BACKEND="openai",
        EMBEDDINGS_BASE_URL=embeddings_server.base_url,
        EMBEDDINGS_API_KEY="test",
        EMBEDDINGS_MODEL="fake-embed",
        EMBEDDINGS_DIMENSIONS="384",
        EMBEDDING_BATCH_SIZE="4",
        MEMORY_AUTO_LEARN="1",
        EMBEDDINGS_TIMEOUT="120",  # the stalled request stalls until the worker is killed
        # Short enough for a test, long enough that a live worker's task is rarely taken from
        # it (when it is, the per-task lock sends the second delivery back until it is free).
        # Longer than the retry countdowns (5 s), as in production (an hour against at most
        # 10 min): a task waiting for its countdown is held unacknowledged, and one held past
        # the visibility timeout is delivered again while it waits, and again.
        CELERY_VISIBILITY_TIMEOUT="8",
        CELERY_UNACKED_RESTORE_SECONDS="1",
    )


@pytest.fixture(scope="module")
def worker_pool(django_db_setup, django_db_blocker, worker_env):
    workers: list[processes.ManagedProcess] = []
    yield workers
    with django_db_blocker.unblock():
        processes.stop_all_and_discard_late_writes(workers)


@pytest.fixture
def two_workers(django_db_blocker, worker_pool, worker_env):
    """Two workers on both queues; one killed by the test before is replaced first."""
    with django_db_blocker.unblock():
        for n, worker in enumerate(list(worker_pool)):
            if not worker.alive():
                worker.stop(timeout=0)  # dead: nothing late to discard
                worker_pool[n] = processes.start_worker(name=f"killable-{n + 1}b", **worker_env)
        if not worker_pool:
            worker_pool.extend(processes.start_workers("killable-1", "killable-2", **worker_env))
    return list(worker_pool)


def kill(worker: processes.ManagedProcess) -> None:
    worker.kill(signal.SIGKILL)
    worker.proc.wait(10)


def wait_until(predicate, timeout: float = 60, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def upload_stuck_in_embedding(embeddings_server, admin) -> Source:
    """An upload whose first embedding request stalls: whichever worker takes the source is
    stuck in it (returns once that request has arrived)."""
    embeddings_server.reset()
    embeddings_server.enqueue(Scripted(delay=60))
    collection = make_collection("Guides", everyone=True)
    with transaction.atomic():
        source = knowledge_services.source_create_from_upload(
            user=admin, collection=collection, filename="guide.md", data=GUIDE.encode()
        ).source
    wait_until(lambda: embeddings_server.calls, what="the first embedding request")
    return source


def test_a_source_whose_worker_is_killed_mid_indexing_is_finished_once_by_the_other_worker(
    two_workers, embeddings_server, admin
):
    source = upload_stuck_in_embedding(embeddings_server, admin)
    doomed = processes.worker_running("knowledge.index_source", two_workers)
    (survivor,) = [w for w in two_workers if w is not doomed]
    assert Source.objects.get(pk=source.pk).status == Source.Status.EMBEDDING
    kill(doomed)

    source = wait_until(
        lambda: Source.objects.filter(pk=source.pk, status__in=["ready", "failed"]).first(),
        what="the source to be finished by the other worker",
    )
    processes.wait_for_idle_workers(queues=("ingest",))  # a second delivery, if any, has run
    source.refresh_from_db()
    assert (source.status, source.error, source.progress) == (Source.Status.READY, "", 100)
    chunks = list(Chunk.objects.filter(source=source).order_by("ordinal"))
    # One complete set: every part, each passage once, numbered without a gap or a repeat.
    assert len(chunks) == source.chunk_count > 2 * 4  # several batches of EMBEDDING_BATCH_SIZE
    assert [c.ordinal for c in chunks] == list(range(source.chunk_count))
    assert Document.objects.filter(source=source).count() == 1
    assert {f"Part {i}" for i in range(1, PARTS + 1)} <= {h for c in chunks for h in c.heading_path}
    text = " ".join(c.text for c in chunks)
    assert all(f"Paragraph {i} sentence 0 " in text for i in range(1, PARTS + 1))
    assert survivor.alive() and not doomed.alive()


def test_a_source_delivered_again_while_its_worker_still_holds_it_waits_for_it_then_is_finished_once(
    two_workers, embeddings_server, admin
):
    """The visibility timeout ran out under a live worker (a stall longer than it): the second
    delivery finds the source's lock taken and comes back later, instead of indexing beside it."""
    source = upload_stuck_in_embedding(embeddings_server, admin)
    holder = processes.worker_running("knowledge.index_source", two_workers)
    (other,) = [w for w in two_workers if w is not holder]
    wait_until(
        lambda: "retry: Retry in 5s" in other.log_tail(100_000),
        what="the second delivery to find the source busy",
    )
    assert len(embeddings_server.calls) == 1  # it did not index beside the holder
    kill(holder)

    source = wait_until(
        lambda: Source.objects.filter(pk=source.pk, status__in=["ready", "failed"]).first(),
        what="the source to be finished by the other worker",
    )
    processes.wait_for_idle_workers(queues=("ingest",))
    source.refresh_from_db()
    assert (source.status, source.error) == (Source.Status.READY, "")
    chunks = Chunk.objects.filter(source=source)
    assert sorted(chunks.values_list("ordinal", flat=True)) == list(range(source.chunk_count))
    assert Document.objects.filter(source=source).count() == 1


def test_a_turn_whose_worker_is_killed_mid_extraction_is_learned_once_by_the_other_worker(
    two_workers, llm, make_user
):
    user = make_user()
    answer = answered_turn(user, SAID)
    # The first extraction request hangs; the next one (the redelivered task's) answers. A
    # third one would propose another fact: asked again, the turn would be learned twice.
    llm.script(Reply.hanging(), extraction_reply(FIRST), extraction_reply(OTHER))
    asked = len(llm.chat_requests)
    after_turn.delay(str(answer.pk))
    llm.wait_for_requests(asked + 1, timeout=30)
    doomed = processes.worker_running("assistant.after_turn", two_workers)
    kill(doomed)

    wait_until(
        lambda: Message.objects.filter(pk=answer.pk, learned_at__isnull=False).exists(),
        what="the turn to be learned by the other worker",
    )
    processes.wait_for_idle_workers(queues=("default",))
    assert list(MemoryItem.objects.filter(owner=user).values_list("text", flat=True)) == [FIRST]
    assert len(llm.chat_requests) == asked + 2

    # The broker delivers the same task once more: nothing is asked, nothing more is learned.
    after_turn.delay(str(answer.pk))
    processes.wait_for_idle_workers(queues=("default",))
    assert len(llm.chat_requests) == asked + 2
    assert list(MemoryItem.objects.filter(owner=user).values_list("text", flat=True)) == [FIRST]
    assert llm.pending == 1  # the reply proposing OTHER was never asked for
