"""The hot read paths cost a fixed number of queries, however much there is to show."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assistant import services
from assistant.models import Citation, Message
from tests.support.knowledge import index_text, make_collection

pytestmark = pytest.mark.django_db


def queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def answered(owner, n: int, collection, source) -> None:
    for i in range(n):
        question = services.question_create(user=owner, conversation=None, text=f"Question {i}?")
        answer = Message.objects.create(
            conversation=question.conversation,
            role=Message.Role.ASSISTANT,
            reply_to=question,
            content=f"Answer {i} [1].",
            sources=[
                {
                    "n": 1,
                    "chunk_id": None,
                    "source_id": source.pk,
                    "collection_id": collection.pk,
                    "text": "x",
                }
            ],
        )
        Citation.objects.create(
            message=answer, collection_id=collection.pk, source_id=source.pk, number=1, quote="x"
        )


@pytest.fixture
def world(make_user):
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    collection = make_collection("Handbook", everyone=True)
    source = index_text(collection, "a.md", "# A\n\nSome text about travel.", user=admin)
    owner = make_user(email="owner@example.com")
    return owner, collection, source


def test_the_conversation_list_costs_the_same_for_3_or_30_conversations(client, world):
    owner, collection, source = world
    client.force_login(owner)
    answered(owner, 3, collection, source)
    few = queries(client, "/api/conversations")
    answered(owner, 27, collection, source)
    assert queries(client, "/api/conversations") == few
    assert queries(client, "/api/conversations?q=answer") <= few + 1


def test_a_conversation_costs_the_same_for_2_or_40_messages(client, world):
    owner, collection, source = world
    client.force_login(owner)
    question = services.question_create(user=owner, conversation=None, text="First?")
    conversation = question.conversation
    url = f"/api/conversations/{conversation.pk}"
    few = queries(client, url)
    for i in range(20):
        q = services.question_create(user=owner, conversation=conversation, text=f"Q{i}?")
        a = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            reply_to=q,
            content="A [1].",
            sources=[{"n": 1, "source_id": source.pk, "collection_id": collection.pk, "text": "x"}],
        )
        Citation.objects.create(
            message=a, collection_id=collection.pk, source_id=source.pk, number=1, quote="x"
        )
    many = queries(client, url)
    assert many <= few + 2, f"{few} queries for 1 message, {many} for 41"
