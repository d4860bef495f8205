"""Indexing under failure: a worker killed mid-task, a flaky embedding endpoint.

This module runs its own worker, embedding through the OpenAI-compatible backend against a
real local HTTP server that can be slowed down or made to fail.
"""

import os
import signal
import time

import psutil
import pytest
from django.db import transaction

from knowledge import services
from knowledge.models import Chunk, Document, Source
from tests.support import processes
from tests.support.fake_embeddings_server import FakeEmbeddingsServer, Scripted
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db(transaction=True)

LONG_GUIDE = "# Guide\n\n" + "\n\n".join(
    f"## Part {i}\n\n"
    + " ".join(f"Paragraph {i} sentence {j} explains a detail of the process." for j in range(12))
    for i in range(1, 13)
)


@pytest.fixture(scope="module")
def embeddings_server():
    with FakeEmbeddingsServer(dimensions=384) as server:
        yield server


@pytest.fixture(scope="module")
def flaky_worker(django_db_setup, django_db_blocker, embeddings_server):
    with django_db_blocker.unblock():
        worker = processes.start_worker(
            name="flaky-worker",
            EMBEDDINGS_BACKEND="openai",
            EMBEDDINGS_BASE_URL=embeddings_server.base_url,
            EMBEDDINGS_API_KEY="test",
            EMBEDDINGS_MODEL="fake-embed",
            EMBEDDINGS_DIMENSIONS="384",
            EMBEDDING_BATCH_SIZE="2",
            INDEXING_RETRY_BASE_SECONDS="0.2",
        )
    yield worker
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(worker)


def upload(admin, name, data):
    collection = make_collection(f"c-{time.monotonic_ns()}", everyone=True)
    with transaction.atomic():
        return services.source_create_from_upload(
            user=admin, collection=collection, filename=name, data=data
        ).source


def wait_for(source_id, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        source = Source.objects.get(pk=source_id)
        if predicate(source):
            return source
        time.sleep(0.05)
    raise AssertionError(f"timed out: {source.status} {source.progress}% {source.error}")


def test_killing_the_worker_process_mid_indexing_ends_with_one_complete_set_of_chunks(
    flaky_worker, embeddings_server, admin
):
    embeddings_server.reset()
    embeddings_server.enqueue(*[Scripted(delay=0.15) for _ in range(400)])
    source = upload(admin, "guide.md", LONG_GUIDE.encode())
    wait_for(source.pk, lambda s: s.status == Source.Status.EMBEDDING and s.progress > 15)

    # Kill the pool process running the task, as the OOM killer would.
    children = psutil.Process(flaky_worker.proc.pid).children(recursive=True)
    assert children, "the worker has no pool process"
    for child in children:
        os.kill(child.pid, signal.SIGKILL)

    source = wait_for(source.pk, lambda s: s.status in ("ready", "failed"), timeout=120)
    assert source.status == Source.Status.READY, source.error
    chunks = Chunk.objects.filter(source=source)
    assert chunks.count() == source.chunk_count > 8
    assert sorted(chunks.values_list("ordinal", flat=True)) == list(range(source.chunk_count))
    assert Document.objects.filter(source=source).count() == 1
    assert flaky_worker.alive()
    embeddings_server.reset()


def test_a_rate_limited_embedding_endpoint_is_retried_until_it_works(
    flaky_worker, embeddings_server, admin
):
    embeddings_server.reset()
    embeddings_server.enqueue(
        Scripted(status=429, headers={"Retry-After": "0"}),
        Scripted(status=503),
        Scripted(status=503),
        Scripted(status=503),
        Scripted(status=503),
        Scripted(status=503),
    )
    source = upload(admin, "small.md", b"# Small\n\nA short note about the coffee machine.")
    source = wait_for(source.pk, lambda s: s.status in ("ready", "failed"), timeout=60)
    assert source.status == Source.Status.READY, source.error
    assert len(embeddings_server.calls) >= 7


def test_a_permanent_embedding_error_marks_the_source_failed_with_the_reason(
    flaky_worker, embeddings_server, admin
):
    embeddings_server.reset()
    embeddings_server.enqueue(
        Scripted(
            status=400,
            body={"error": {"message": "input too long", "type": "invalid_request_error"}},
        )
    )
    source = upload(admin, "small.md", b"# Small\n\nA short note about the tea kitchen.")
    source = wait_for(source.pk, lambda s: s.status in ("ready", "failed"), timeout=60)
    assert source.status == Source.Status.FAILED
    assert "input too long" in source.error or "rejected" in source.error.lower()
    assert flaky_worker.alive()
