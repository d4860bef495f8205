"""An answer whose writer died (its process was killed) never blocks its conversation, and
reading a conversation never writes to it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from assistant import selectors, services
from assistant.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation_with_dead_answer(make_user):
    owner = make_user(email="owner@example.com")
    question = services.question_create(user=owner, conversation=None, text="Where is the VPN?")
    answer = Message.objects.create(
        conversation=question.conversation,
        role=Message.Role.ASSISTANT,
        reply_to=question,
        status=Message.Status.STREAMING,
        content="The VPN is",
    )
    dead_since = timezone.now() - timedelta(seconds=selectors.STALE_STREAM_SECONDS + 5)
    Message.objects.filter(pk=answer.pk).update(updated_at=dead_since)
    return owner, question.conversation, answer


def test_reading_a_conversation_shows_a_dead_answer_as_interrupted_without_writing(
    client, conversation_with_dead_answer
):
    owner, conversation, answer = conversation_with_dead_answer
    client.force_login(owner)
    response = client.get(f"/api/conversations/{conversation.pk}")
    shown = response.json()["messages"][-1]
    assert shown["status"] == "failed" and shown["error"] == "The answer was interrupted."
    assert shown["content"] == "The VPN is"  # the text written before it died is kept
    answer.refresh_from_db()
    assert answer.status == Message.Status.STREAMING  # a GET wrote nothing


def test_a_dead_answer_does_not_make_the_conversation_busy(conversation_with_dead_answer):
    owner, conversation, answer = conversation_with_dead_answer
    question = services.question_ask(user=owner, conversation=conversation, text="And Wi-Fi?")
    assert question.conversation_id == conversation.pk
    answer.refresh_from_db()
    assert answer.status == Message.Status.FAILED and answer.error == "The answer was interrupted."


def test_an_answer_being_written_makes_the_conversation_busy(conversation_with_dead_answer):
    owner, conversation, answer = conversation_with_dead_answer
    Message.objects.filter(pk=answer.pk).update(updated_at=timezone.now())
    with pytest.raises(services.Busy):
        services.question_ask(user=owner, conversation=conversation, text="And Wi-Fi?")
    assert not Message.objects.filter(content="And Wi-Fi?").exists()
