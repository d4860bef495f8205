"""An ingest queue of 5,000 queued sources with no worker running must not slow the web
process: the knowledge page and a chat answer cost about what they cost with none queued.

A benchmark inside the suite: it measures both paths with 0 and 5,000 queued sources and
prints the ratios (for docs/BENCHMARKS.md). Timings on a shared two-core machine are noisy, so
the only assertions on time are generous (5x); what the test pins exactly is the work that
grows with the backlog: the page renders one page of rows with the same queries.
"""

from __future__ import annotations

import statistics
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from knowledge import services
from knowledge.models import Source
from knowledge.views import SOURCES_PER_PAGE
from tests.support.answering import scripted_settings
from tests.support.events import queued_tasks
from tests.support.knowledge import make_collection
from tests.support.openai_server import Reply
from tests.support.sockets import open_socket

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BACKLOG = 5000
SAMPLE = 25  # queued through the upload service, as a person would
QUESTION = "How do I book a flight?"
ROUNDS = 5


@pytest.fixture(autouse=True)
def _answering_with_the_scripted_model(llm_server, settings):
    # Every round asks the model: a cached answer would not measure the answer path.
    for name, value in scripted_settings(llm_server, ANSWER_CACHE_SECONDS=0).items():
        setattr(settings, name, value)


def queue_backlog(collection, owner, count: int) -> None:
    """``count`` more queued sources: the first SAMPLE through the upload service, as a person
    adds them (their tasks are queued for a worker that is not running), the rest in bulk."""
    already = Source.objects.filter(collection=collection).count()
    through_service = max(0, min(SAMPLE - already, count))
    with queued_tasks() as tasks:
        for i in range(already, already + through_service):
            services.source_create_from_upload(
                user=owner,
                collection=collection,
                filename=f"note-{i}.md",
                data=f"# Note {i}\n\nQueued note number {i}.\n".encode(),
            )
    assert len(tasks) == through_service
    Source.objects.bulk_create(
        Source(
            collection=collection,
            owner=owner,
            kind=Source.Kind.URL,
            name=f"https://intranet.example.com/page-{i}",
            url=f"https://intranet.example.com/page-{i}",
            status=Source.Status.QUEUED,
        )
        for i in range(already + through_service, already + count)
    )
    assert Source.objects.filter(collection=collection).count() == already + count


def page_ms(client: Client) -> tuple[float, int, int]:
    """The knowledge page's median time over ROUNDS, its query count and its rows."""
    times = []
    for _ in range(ROUNDS):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get("/knowledge/")
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), len(queries), response.content.count(b'class="source-row"')


async def answer_ms(user, llm_server) -> float:
    """A question's median time from ``ask`` to ``done`` over ROUNDS, through the consumer."""
    times = []
    for round_ in range(ROUNDS):
        llm_server.script(Reply(tokens=["Book through the portal [1]."]))
        socket = await open_socket(user)
        started = time.perf_counter()
        await socket.send(type="ask", request_id=f"r{round_}", text=QUESTION)
        frames = await socket.until_type("done", timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        assert frames[-1]["message"]["status"] == "complete"
        await socket.close()
    return statistics.median(times)


async def test_5000_queued_sources_do_not_slow_the_knowledge_page_or_an_answer(
    llm_server, handbook, make_user, admin
):
    user = await sync_to_async(make_user)()
    client = Client()
    await sync_to_async(client.force_login)(admin)
    backlog = await sync_to_async(make_collection)("Intranet", everyone=True)

    empty_page, empty_queries, _ = await sync_to_async(page_ms)(client)
    empty_answer = await answer_ms(user, llm_server)
    # One page of queued sources: the page's own cost of showing a full page of rows.
    await sync_to_async(queue_backlog)(backlog, admin, SOURCES_PER_PAGE)
    one_page, _, _ = await sync_to_async(page_ms)(client)
    await sync_to_async(queue_backlog)(backlog, admin, BACKLOG - SOURCES_PER_PAGE)
    full_page, full_queries, rows = await sync_to_async(page_ms)(client)
    full_answer = await answer_ms(user, llm_server)

    print(
        f"\nknowledge page: {empty_page:.0f} ms with 0 queued, {one_page:.0f} ms with "
        f"{SOURCES_PER_PAGE}, {full_page:.0f} ms with {BACKLOG} (x{full_page / one_page:.2f}); "
        f"answer: {empty_answer:.0f} ms with 0 queued, {full_answer:.0f} ms with {BACKLOG} "
        f"(x{full_answer / empty_answer:.2f})"
    )
    assert full_queries == empty_queries
    assert rows == 1 + SOURCES_PER_PAGE  # the handbook's one source and a page of the backlog
    assert full_page < 5 * one_page + 200
    assert full_answer < 5 * empty_answer + 200
