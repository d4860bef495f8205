import pytest
from django.conf import settings
from django.test import Client

from tests.support import processes


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real Celery worker process on the test database (use with transactional tests)."""
    with django_db_blocker.unblock():
        worker = processes.start_worker()
    yield worker
    worker.stop()
    with django_db_blocker.unblock():
        processes.wait_for_other_db_sessions_to_end()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker):
    """A real Daphne process serving the app on the test database: yields its base URL."""
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne()
    yield f"http://127.0.0.1:{port}"
    proc.stop()
    with django_db_blocker.unblock():
        processes.wait_for_other_db_sessions_to_end()


@pytest.fixture
def make_user(django_user_model):
    counter = iter(range(1, 10_000))

    def make(email: str | None = None, password: str = "correct horse battery", **extra):
        email = email or f"user{next(counter)}@example.com"
        return django_user_model.objects.create_user(email=email, password=password, **extra)

    return make


def session_cookie_for(user) -> str:
    """A real session for ``user`` (as after a login), for clients outside Django's test client."""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
