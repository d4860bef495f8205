"""A person downloads their own data (assistant/privacy/export.py) from the account page:
only theirs, signed in, streamed page by page, no token hashes, no passage they can no longer
read."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AccessToken, SlackIdentity
from assistant.models import Citation, Conversation, Feedback, MemoryItem, Message
from assistant.privacy import export
from knowledge.tokens import token_create
from tests.support.knowledge import make_collection

# The export reads in the thread pool (a connection of its own): the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)
URL = "/accounts/me/export.json"


def download(user, *, method: str = "get"):
    """The response and its whole body, through the ASGI handler as Daphne would serve it."""

    async def go():
        client = AsyncClient()
        if user is not None:
            await client.aforce_login(user)
        response = await getattr(client, method)(URL)
        if response.streaming:
            body = b"".join([part async for part in response.streaming_content])
        else:
            body = response.content
        return response, body

    return async_to_sync(go)()


def chat(owner, title: str, *, question: str, answer: str) -> Message:
    conv = Conversation.objects.create(owner=owner, title=title)
    asked = Message.objects.create(conversation=conv, role="user", content=question)
    return Message.objects.create(
        conversation=conv, role="assistant", content=answer, reply_to=asked
    )


@pytest.fixture
def ada(make_user):
    return make_user(email="ada@example.com", full_name="Ada L")


@pytest.fixture
def bob(make_user):
    return make_user(email="bob@example.com")


def test_the_export_holds_the_persons_own_data_and_another_persons_conversation_never_appears(
    ada, bob
):
    handbook = make_collection("Handbook", everyone=True)
    answer = chat(ada, "Lisbon trip", question="Flights to Lisbon?", answer="Book early [1].")
    Citation.objects.create(
        message=answer, collection_id=handbook.pk, number=1, quote="Book 14 days ahead."
    )
    Feedback.objects.create(message=answer, user=ada, rating=1, comment="clear")
    MemoryItem.objects.create(owner=ada, text="Ada works in Porto", embedding=[0.1] * 384)
    token, plaintext = token_create(user=ada, name="report script")
    SlackIdentity.objects.create(team_id="T1", slack_user_id="UADA", user=ada)
    bobs = chat(bob, "Bob's salary", question="What is my raise?", answer="Secret 42.")
    Feedback.objects.create(message=bobs, user=bob, rating=-1, comment="bob's comment")
    MemoryItem.objects.create(owner=bob, text="Bob likes Oslo", embedding=[0.1] * 384)
    token_create(user=bob, name="bob's token")

    response, body = download(ada)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="assistant-my-data-')
    assert "no-store" in response["Cache-Control"]
    data = json.loads(body)
    assert data["format"] == "assistant-personal-data" and data["version"] == 1
    assert data["account"]["email"] == "ada@example.com"
    [conversation] = data["conversations"]
    assert conversation["title"] == "Lisbon trip"
    assert [m["content"] for m in conversation["messages"]] == [
        "Flights to Lisbon?",
        "Book early [1].",
    ]
    assert conversation["messages"][1]["citations"][0]["quote"] == "Book 14 days ahead."
    assert [m["text"] for m in data["memory"]] == ["Ada works in Porto"]
    assert [f["comment"] for f in data["feedback"]] == ["clear"]
    assert [t["name"] for t in data["access_tokens"]] == ["report script"]
    assert data["access_tokens"][0]["prefix"] == token.prefix
    assert data["slack_identities"][0]["slack_user_id"] == "UADA"
    text = body.decode()
    for bobs_data in ("Bob's salary", "raise", "Secret 42", "bob's comment", "Oslo", "bob's token"):
        assert bobs_data not in text
    stored = AccessToken.objects.get(pk=token.pk)
    assert stored.secret_hash not in text and plaintext not in text  # never the credential


def test_the_export_needs_sign_in(ada):
    response, _ = download(None)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_export_takes_no_post(ada):
    response, _ = download(ada, method="post")
    assert response.status_code == 405


def test_a_citation_the_person_can_no_longer_read_is_marked_unavailable(ada):
    hr = make_collection("HR only")  # groups only, and ada is in none
    answer = chat(ada, "Pay", question="Pay scale?", answer="See [1].")
    Citation.objects.create(
        message=answer, collection_id=hr.pk, number=1, quote="Grade 7 earns 91,000."
    )

    _, body = download(ada)

    citation = json.loads(body)["conversations"][0]["messages"][1]["citations"][0]
    assert citation == {"number": 1, "unavailable": True}
    assert "91,000" not in body.decode()


def test_a_long_history_comes_whole_and_in_order_read_page_by_page(ada):
    start = timezone.now() - timedelta(days=400)
    count = export.PAGE * 2 + 7
    for i in range(count):
        conv = Conversation.objects.create(owner=ada, title=f"chat {i:03d}")
        Message.objects.create(conversation=conv, role="user", content=f"question {i}")
        Conversation.objects.filter(pk=conv.pk).update(created_at=start + timedelta(hours=i))

    _, body = download(ada)

    titles = [c["title"] for c in json.loads(body)["conversations"]]
    assert titles == [f"chat {i:03d}" for i in range(count)]


def test_pages_follow_on_without_gaps_when_conversations_share_a_creation_time(ada):
    at = timezone.now()
    ids = set()
    for i in range(export.PAGE + 3):
        conv = Conversation.objects.create(owner=ada, title=f"same {i}")
        ids.add(str(conv.pk))
    Conversation.objects.filter(owner=ada).update(created_at=at)

    first, after = export.conversation_page(ada, None)
    second, end = export.conversation_page(ada, after)

    assert len(first) == export.PAGE and len(second) == 3 and end is None
    assert {c["id"] for c in first + second} == ids


def test_words_that_look_like_the_files_own_framing_stay_words(ada):
    """The export writes its JSON a page at a time around each item: a title or message that
    closes brackets, breaks lines or holds JavaScript's line separators must come back as text,
    the file still one valid document, across a page boundary too."""
    hostile = 'x"]}, {"owner": "bob"}\n\u2028\u2029</script>'
    for i in range(export.PAGE):
        chat(ada, f"{hostile} {i}", question=hostile, answer=hostile)

    response, body = download(ada)

    data = json.loads(body)
    titles = [c["title"] for c in data["conversations"]]
    assert titles == [f"{hostile} {i}" for i in range(export.PAGE)]
    assert all(m["content"] == hostile for c in data["conversations"] for m in c["messages"])


def test_the_account_page_links_to_the_download(ada):
    client = Client()
    client.force_login(ada)
    page = client.get("/accounts/me/").content.decode()
    assert 'id="account-export" href="/accounts/me/export.json"' in page
    assert "Download your data" in page


def test_someone_elses_id_in_the_address_is_ignored(ada, bob):
    """The export takes no id: naming another person gets your own data, never theirs."""
    chat(bob, "Bob's salary", question="What is my raise?", answer="Secret 42.")
    chat(ada, "Lisbon trip", question="Flights?", answer="Book early.")

    async def go():
        client = AsyncClient()
        await client.aforce_login(ada)
        response = await client.get(URL, {"user": bob.pk, "user_id": bob.pk, "email": bob.email})
        return b"".join([part async for part in response.streaming_content])

    data = json.loads(async_to_sync(go)())
    assert data["account"]["email"] == "ada@example.com"
    assert [c["title"] for c in data["conversations"]] == ["Lisbon trip"]


def test_a_page_of_conversations_costs_the_same_queries_however_many_it_holds(
    ada, django_assert_max_num_queries
):
    handbook = make_collection("Handbook", everyone=True)

    def add(n: int) -> None:
        for i in range(n):
            answer = chat(ada, f"chat {i}", question="q", answer="a [1]")
            Citation.objects.create(message=answer, collection_id=handbook.pk, number=1, quote="x")

    add(2)
    with CaptureQueriesContext(connection) as few:
        export.conversation_page(ada, None)
    add(export.PAGE)
    with django_assert_max_num_queries(len(few)):
        items, _ = export.conversation_page(ada, None)
    assert len(items) == export.PAGE
