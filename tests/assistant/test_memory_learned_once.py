"""A turn is learned from once: the task that learns from it (``assistant.after_turn``) may be
delivered twice (a worker killed mid-task, a broker redelivery), and two workers may hold it at
the same time. The worker-killed case with real processes is tests/e2e/test_worker_killed.py."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import override_settings

from assistant.memory import extraction as memory_extraction
from assistant.models import MemoryItem, Message
from assistant.tasks import after_turn
from tests.support.answering import scripted_settings
from tests.support.memory import answered_turn, extraction_reply
from tests.support.openai_server import ScriptedOpenAI

pytestmark = pytest.mark.django_db(transaction=True)

SAID = "I'm on the storage team and I work in Lisbon. How do I use zstd?"
# Both grounded in what was said, and far apart: a second run that proposed the other one
# would store a second item rather than refresh the first.
FIRST, OTHER = "The user is on the storage team.", "The user works in Lisbon."


@pytest.fixture
def model():
    with (
        ScriptedOpenAI(default=None) as server,
        override_settings(**scripted_settings(server), MEMORY_AUTO_LEARN=True),
    ):
        yield server


def test_a_duplicate_delivery_of_the_same_turn_learns_nothing_more(model, make_user):
    user = make_user()
    answer = answered_turn(user, SAID)
    model.script(extraction_reply(FIRST), extraction_reply(OTHER))

    after_turn.apply(args=[str(answer.pk)]).get()
    after_turn.apply(args=[str(answer.pk)]).get()  # the broker delivers it again

    assert len(model.requests) == 1, "the model was asked again about a turn already learned"
    assert list(MemoryItem.objects.filter(owner=user).values_list("text", flat=True)) == [FIRST]
    assert Message.objects.get(pk=answer.pk).learned_at is not None


def test_a_turn_learned_from_with_nothing_to_keep_is_not_asked_about_again(model, make_user):
    user = make_user()
    answer = answered_turn(user, SAID)
    model.script(extraction_reply(), extraction_reply(OTHER))
    assert memory_extraction.learn_from_turn(answer_id=answer.pk) == []
    assert memory_extraction.learn_from_turn(answer_id=answer.pk) == []
    assert len(model.requests) == 1 and not MemoryItem.objects.exists()


def test_a_turn_another_worker_is_learning_from_is_left_to_it(model, make_user):
    user = make_user()
    answer = answered_turn(user, SAID)
    held, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        # Its own database session, as another worker's: it holds the turn's lock.
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_lock(%s, hashtext(%s))",
                    [memory_extraction.LEARN_LOCK_NAMESPACE, str(answer.pk)],
                )
                held.set()
                release.wait(30)
        finally:
            connection.close()  # ends the session, and the lock with it

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(memory_extraction.TurnBusy):
            memory_extraction.learn_from_turn(answer_id=answer.pk)
        assert model.requests == []
    finally:
        release.set()
        thread.join(10)
    model.script(extraction_reply(FIRST))
    assert memory_extraction.learn_from_turn(answer_id=answer.pk) == [FIRST]
    assert MemoryItem.objects.filter(owner=user).count() == 1
