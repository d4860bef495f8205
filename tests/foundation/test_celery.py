import time
import uuid

import pytest
from django.core.cache import cache
from django.db import transaction

from assistant.project.celery import app
from assistant.tasks import echo


def test_celery_is_configured_for_safe_delivery():
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_on_commit_round_trips_through_a_real_worker(celery_worker):
    key = uuid.uuid4().hex
    with transaction.atomic():
        transaction.on_commit(lambda: echo.delay(key, "pong"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and cache.get(f"echo:{key}") is None:
        time.sleep(0.05)
    assert cache.get(f"echo:{key}") == "pong"


@pytest.mark.django_db(transaction=True)
def test_a_task_from_a_rolled_back_transaction_is_never_sent(celery_worker):
    key = uuid.uuid4().hex
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(lambda: echo.delay(key, "ghost"))
        raise RuntimeError("roll back")
    echo.delay(key + "-marker", "done")  # a later task: once it ran, the ghost would have too
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and cache.get(f"echo:{key}-marker") is None:
        time.sleep(0.05)
    assert cache.get(f"echo:{key}-marker") == "done"
    assert cache.get(f"echo:{key}") is None
