"""The fixtures every test module may use, registered once by tests/conftest.py.

A module (or a folder's conftest) that needs something different defines a fixture of the
same name, which takes precedence for it; a fixture that means something else gets its own
name (``staff_handbook``, ``offices``).
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from tests.support import processes
from tests.support.database import install_fast_teardown
from tests.support.knowledge import HANDBOOK, index_text, make_collection
from tests.support.openai_server import ScriptedOpenAI

# --- the database and the processes around it -----------------------------------------------

# Transactional tests keep the content types and permissions instead of rebuilding them after
# every test (tests/support/database.py).
install_fast_teardown()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Threads used by sync_to_async keep their own connections; end them before the test DB
    is dropped, or the drop fails with "database is being accessed by other users"."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, django_db_blocker):
    """A real Celery worker process on the test database (use with transactional tests).

    Module-scoped so a module that needs a differently configured worker can start its own
    without another one stealing its tasks."""
    with django_db_blocker.unblock():
        worker = processes.start_worker()
    yield worker
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(worker)


@pytest.fixture(autouse=True)
def _background_work_finished(request, django_db_blocker):
    """A test using the shared worker ends only when the work it started has: the database is
    flushed right after it, and a flush racing a worker's insert can deadlock."""
    yield
    if "celery_worker" in request.fixturenames:
        with django_db_blocker.unblock():
            processes.wait_for_background_work()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker):
    """A real Daphne process serving the app on the test database: yields its base URL."""
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne()
    yield f"http://127.0.0.1:{port}"
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc)


# --- people and knowledge ---------------------------------------------------------------------


@pytest.fixture
def eager_tasks():
    """Celery tasks run in this process, when their transaction commits (``enqueue_on_commit``),
    as a worker would run them; errors propagate to the test. For tests not about the worker."""
    from assistant.project.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def make_user(django_user_model):
    counter = iter(range(1, 10_000))

    def make(email: str | None = None, password: str = "correct horse battery", **extra):
        email = email or f"user{next(counter)}@example.com"
        return django_user_model.objects.create_user(email=email, password=password, **extra)

    return make


@pytest.fixture
def admin(make_user):
    return make_user(email="admin@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def handbook(admin):
    """The travel handbook (``HANDBOOK``, one source: travel.md), open to everyone, indexed in
    this process as a worker would: its collection."""
    collection = make_collection("Handbook", everyone=True)
    index_text(collection, "travel.md", HANDBOOK, user=admin)
    return collection


# --- the model --------------------------------------------------------------------------------


@pytest.fixture
def llm_server():
    """A scripted OpenAI-compatible server with no default reply: a request the test did not
    script gets a loud 500."""
    with ScriptedOpenAI(default=None) as server:
        yield server


# --- browser tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _allow_orm_next_to_playwright():
    """Playwright's sync API keeps an event loop in this thread, so Django refuses ORM calls.
    Browser tests call the ORM only between browser steps, never concurrently with them, so
    a browser module allows it for its own duration and restores the environment after."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if before is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="module")
def browser(_allow_orm_next_to_playwright):
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
