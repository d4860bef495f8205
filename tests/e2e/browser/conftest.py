"""Browser tests: a real Chromium (through Playwright) against a real Daphne, a real Celery
worker, Redis, PostgreSQL and a scripted OpenAI-compatible server on 127.0.0.1.

Playwright's sync API keeps an event loop running in the main thread, which makes Django
refuse ORM calls ("you cannot call this from an async context"). These tests call the ORM
only between browser steps, never concurrently with it, so the module allows it for its own
duration (and restores the environment afterwards, so other modules are unaffected).

The steps browser tests share (signing in, waiting for the chat) are in tests/support/browser.py;
the travel handbook and the Chromium itself are shared fixtures (tests/support/fixtures.py).
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from tests.support import processes
from tests.support.answering import scripted_env
from tests.support.browser import PASSWORD, watch_for_problems
from tests.support.openai_server import RecordedRequest, Reply, ScriptedOpenAI

SCREENSHOTS = (
    Path(os.environ.get("VAR_DIR", processes.BASE_DIR / "var" / "test"))
    / "artifacts"
    / "screenshots"
)


class Answers:
    """The scripted model's replies, chosen by the question the model was asked.

    Tests register replies per question, so a reply left over by one test can never answer
    another test's question. Replies for a question are used in order; the last one repeats.
    """

    def __init__(self) -> None:
        self.by_question: dict[str, deque[Reply]] = defaultdict(deque)

    def set(self, question: str, *replies: Reply) -> None:
        self.by_question[question] = deque(replies)

    def clear(self) -> None:
        self.by_question.clear()

    def __call__(self, request: RecordedRequest) -> Reply:
        messages = request.body.get("messages", []) if isinstance(request.body, dict) else []
        question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        replies = self.by_question.get(question)
        if not replies:
            return Reply.error(500, f"no scripted reply for {question!r}")
        return replies.popleft() if len(replies) > 1 else replies[0]


# One scripted model and one Daphne for every browser module of a test process: starting them
# per module cost seconds a module, and every test empties the database and clears the replies.
@pytest.fixture(scope="session")
def answers() -> Answers:
    return Answers()


@pytest.fixture(scope="session")
def llm_server(answers):
    # A callable default picks the reply for each request (see Answers).
    with ScriptedOpenAI(default=answers) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_answers(answers):
    answers.clear()
    yield
    answers.clear()


@pytest.fixture(scope="session")
def chat_server(django_db_setup, django_db_blocker, llm_server):
    """A Daphne serving the app, its LLM being the scripted server: yields the base URL.

    Session-scoped, so it starts before any module's Playwright loop (no ORM call here runs
    next to it) and stops after the last one."""
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**scripted_env(llm_server))
    yield f"http://127.0.0.1:{port}"
    with django_db_blocker.unblock():  # daphne lingers on open sockets; a hard stop is fine
        processes.stop_and_discard_late_writes(proc)


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    watch_for_problems(page)
    return page


@pytest.fixture
def screenshot() -> Callable:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, **kwargs) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path

    return take


@pytest.fixture
def reader(make_user):
    """A staff member with no special rights (knowledge open to everyone is readable)."""
    return make_user(email="reader@example.com", password=PASSWORD, full_name="Rita Reader")


@pytest.fixture
def indexing_worker(django_db_blocker):
    """A real Celery worker for one test only: the other tests index in-process, and a worker
    left running would race them for the same sources."""
    with django_db_blocker.unblock():
        worker = processes.start_worker(name="chat-worker")
    yield worker
    worker.stop()


@pytest.fixture
def editors():
    return Group.objects.create(name="editors")
