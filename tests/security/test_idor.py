"""Someone else's id, replayed: every URL and every socket message that takes an id is tried by
a signed-in colleague who may not see what it points at. Each must answer exactly as for an id
that does not exist, change nothing, and leak nothing of the target."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client

from assistant.memory import services as memory_services
from assistant.models import Conversation, Feedback, MemoryItem, Message
from assistant.project.routing import websocket_urlpatterns
from knowledge.models import Collection, Source
from tests.support import knowledge as hr
from tests.support.knowledge import (
    SECRET_WORDS,
    hr_world,
    index_text,
    make_collection,
)
from tests.support.sockets import open_socket

SECRET_TITLE = "Layoff plan for Q3"
SECRET_QUESTION = "Which teams are in the layoff plan?"
SECRET_ANSWER = "The plan names the Lisbon support team."
SECRET_PASSAGE = (
    "# Restructuring\n\nThe restructuring removes the Lisbon support team in September."
)


@pytest.fixture
def world(make_user):
    """Alice owns a conversation, a memory item and an HR collection; Bob is a colleague."""
    hr = Group.objects.create(name="hr")
    alice, bob = make_user(email="alice@example.com"), make_user(email="bob@example.com")
    alice.groups.add(hr)
    admin = make_user(is_staff=True)
    collection = make_collection("HR", readers=[hr], managers=[hr])
    source = index_text(collection, "restructuring.md", SECRET_PASSAGE, user=admin)
    conversation = Conversation.objects.create(owner=alice, title=SECRET_TITLE)
    question = Message.objects.create(
        conversation=conversation, role="user", content=SECRET_QUESTION
    )
    answer = Message.objects.create(
        conversation=conversation, role="assistant", content=SECRET_ANSWER, reply_to=question
    )
    item = memory_services.remember(user=alice, text="I am on the restructuring committee")
    return {
        "alice": alice,
        "bob": bob,
        "collection": collection,
        "source": source,
        "conversation": conversation,
        "question": question,
        "answer": answer,
        "memory": item,
    }


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _no_secret_in(response) -> None:
    body = response.content.decode(errors="replace")
    for secret in (SECRET_TITLE, SECRET_QUESTION, SECRET_ANSWER, "Lisbon", "restructuring.md"):
        assert secret not in body


def _unchanged(world) -> None:
    conversation = Conversation.objects.get(pk=world["conversation"].pk)
    assert conversation.title == SECRET_TITLE and conversation.remember is True
    assert Message.objects.filter(conversation=conversation, superseded=False).count() == 2
    assert (
        MemoryItem.objects.get(pk=world["memory"].pk).text == "I am on the restructuring committee"
    )
    source = Source.objects.get(pk=world["source"].pk)
    assert source.status == Source.Status.READY
    assert not Feedback.objects.exists()


# --- HTTP ------------------------------------------------------------------------------------

HTTP_REPLAYS = [
    ("get", "/api/conversations/{conversation}", {}),
    ("post", "/api/conversations/{conversation}/rename", {"title": "pwned"}),
    ("post", "/api/conversations/{conversation}/delete", {}),
    ("post", "/api/conversations/{conversation}/remember", {"remember": "0"}),
    ("post", "/memory/{memory}/edit", {"text": "pwned"}),
    ("post", "/memory/{memory}/delete", {}),
    ("get", "/knowledge/sources/{source}/", {}),
    ("get", "/knowledge/sources/{source}/status", {}),
    ("get", "/knowledge/sources/{source}/row", {}),
    ("post", "/knowledge/sources/{source}/reindex", {}),
    ("get", "/knowledge/sources/{source}/delete", {}),
    ("post", "/knowledge/sources/{source}/delete", {}),
    ("post", "/knowledge/collections/{collection}/urls", {"url": "https://example.com/"}),
]


def _url(template: str, world) -> str:
    return template.format(
        conversation=world["conversation"].pk,
        memory=world["memory"].pk,
        source=world["source"].pk,
        collection=world["collection"].pk,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "template", "data"), HTTP_REPLAYS, ids=[f"{m} {t}" for m, t, _ in HTTP_REPLAYS]
)
def test_a_colleague_replaying_someone_elses_id_gets_not_found_and_changes_nothing(
    world, method, template, data
):
    bob = _client_for(world["bob"])

    response = getattr(bob, method)(_url(template, world), data)

    assert response.status_code == 404
    _no_secret_in(response)
    _unchanged(world)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "template", "data"), HTTP_REPLAYS, ids=[f"{m} {t}" for m, t, _ in HTTP_REPLAYS]
)
def test_someone_elses_id_and_a_missing_id_answer_the_same(world, method, template, data):
    """No oracle: a forbidden id is indistinguishable from one that does not exist."""
    bob = _client_for(world["bob"])
    missing = {
        "conversation": uuid.uuid4(),
        "memory": 10**9,
        "source": 10**9,
        "collection": 10**9,
    }

    forbidden = getattr(bob, method)(_url(template, world), data)
    absent = getattr(bob, method)(template.format(**missing), data)

    assert (forbidden.status_code, forbidden["Content-Type"]) == (
        absent.status_code,
        absent["Content-Type"],
    )


@pytest.mark.django_db
def test_uploading_into_a_collection_i_cannot_manage_by_its_id_is_not_found_and_stores_nothing(
    world, tmp_path
):
    bob = _client_for(world["bob"])
    upload = tmp_path / "evil.md"
    upload.write_text("# Evil\n\nPlanted text.")

    with upload.open("rb") as handle:
        response = bob.post(
            _url("/knowledge/collections/{collection}/upload", world), {"file": handle}
        )

    assert response.status_code == 404
    assert not Source.objects.filter(name="evil.md").exists()


@pytest.mark.django_db
def test_a_reader_who_may_not_manage_cannot_reindex_or_delete_by_id(world, make_user):
    reader = make_user()
    reader.groups.add(Group.objects.create(name="readers"))
    world["collection"].read_groups.add(reader.groups.get())
    client = _client_for(reader)

    assert client.get(_url("/knowledge/sources/{source}/", world)).status_code == 200
    assert client.post(_url("/knowledge/sources/{source}/reindex", world)).status_code == 404
    assert client.post(_url("/knowledge/sources/{source}/delete", world)).status_code == 404
    _unchanged(world)


@pytest.mark.django_db
def test_the_chat_page_for_someone_elses_conversation_shows_none_of_it(world):
    response = _client_for(world["bob"]).get(f"/c/{world['conversation'].pk}")

    assert response.status_code in (200, 404)
    _no_secret_in(response)


@pytest.mark.django_db
def test_bulk_status_leaves_out_sources_of_collections_i_cannot_read(world):
    bob = _client_for(world["bob"])

    response = bob.get(f"/knowledge/sources/status?ids={world['source'].pk},{10**9}")

    assert response.json() == {"sources": []}
    assert bob.get(f"/knowledge/sources/{world['source'].pk}/status").status_code == 404
    rows = bob.get(f"/knowledge/sources/rows?ids={world['source'].pk},{10**9}")
    assert rows.status_code == 200
    assert world["source"].name not in rows.content.decode()
    assert f'data-source-id="{world["source"].pk}"' not in rows.content.decode()
    _unchanged(world)


# --- WebSocket -------------------------------------------------------------------------------


def _socket_app():
    # The consumer behind the real session authentication (Origin checks have their own tests).
    return AuthMiddlewareStack(URLRouter(websocket_urlpatterns))


async def _connect(user) -> WebsocketCommunicator:
    client = await sync_to_async(_client_for)(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    communicator = WebsocketCommunicator(
        _socket_app(),
        "/ws/events/",
        headers=[(b"cookie", cookie.encode()), (b"origin", b"http://testserver")],
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"
    return communicator


SOCKET_REPLAYS = [
    ({"type": "ask", "text": "Tell me", "conversation_id": "{conversation}"}, "not_found"),
    ({"type": "stop", "message_id": "{answer}"}, "not_found"),
    ({"type": "regenerate", "message_id": "{answer}"}, "not_found"),
    ({"type": "edit", "message_id": "{question}", "text": "Rewritten"}, "not_found"),
    ({"type": "feedback", "message_id": "{answer}", "rating": -1, "comment": "bad"}, "not_found"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("frame", "code"), SOCKET_REPLAYS, ids=[f["type"] for f, _ in SOCKET_REPLAYS]
)
async def test_a_socket_message_with_someone_elses_id_is_not_found_and_changes_nothing(
    world, frame, code
):
    ids = {k: str(world[k].pk) for k in ("conversation", "answer", "question")}
    frame = {k: v.format(**ids) if isinstance(v, str) else v for k, v in frame.items()}
    frame["request_id"] = "r1"
    bob = await _connect(world["bob"])
    try:
        await bob.send_json_to(frame)
        reply = await bob.receive_json_from(timeout=10)
    finally:
        await bob.disconnect()

    assert reply["type"] == "error" and reply["code"] == code and reply["request_id"] == "r1"
    assert SECRET_ANSWER not in json.dumps(reply) and SECRET_TITLE not in json.dumps(reply)
    await sync_to_async(_unchanged)(world)
    assert not await Message.objects.filter(conversation__owner=world["bob"]).aexists()


@pytest.mark.django_db(transaction=True)
async def test_asking_with_the_id_of_a_collection_i_cannot_read_retrieves_nothing_from_it(world):
    bob = await _connect(world["bob"])
    try:
        await bob.send_json_to(
            {
                "type": "ask",
                "text": "Which team does the restructuring remove?",
                "collection_ids": [world["collection"].pk],
                "request_id": "r2",
            }
        )
        frames = []
        while not frames or frames[-1]["type"] not in ("done", "error"):
            frames.append(await bob.receive_json_from(timeout=30))
    finally:
        await bob.disconnect()

    retrieval = next(f for f in frames if f["type"] == "retrieval")
    assert retrieval["sources"] == []
    assert "Lisbon" not in json.dumps(frames)


@pytest.mark.django_db(transaction=True)
async def test_an_id_that_is_not_a_uuid_is_refused_without_touching_anything(world):
    bob = await _connect(world["bob"])
    try:
        for hostile in ("' OR 1=1 --", {"$ne": None}, 12, None, "../" * 50):
            await bob.send_json_to({"type": "stop", "message_id": hostile})
            reply = await bob.receive_json_from(timeout=10)
            assert reply["type"] == "error" and reply["code"] == "not_found"
    finally:
        await bob.disconnect()
    await sync_to_async(_unchanged)(world)


@pytest.mark.django_db
def test_a_collection_id_is_never_a_way_around_the_readable_set(world):
    """The narrowing list is intersected with what the person may read, never trusted."""
    from knowledge.retrieval import search_chunks_for_user

    result = search_chunks_for_user(
        user=world["bob"],
        query="restructuring Lisbon support team",
        collection_ids=[world["collection"].pk],
    )
    everyone = make_collection("Open", everyone=True)
    widened = search_chunks_for_user(
        user=world["bob"],
        query="restructuring Lisbon support team",
        collection_ids=[everyone.pk, world["collection"].pk],
    )

    assert result.hits == [] and widened.hits == []
    assert Collection.objects.filter(pk=world["collection"].pk).exists()


@pytest.mark.django_db(transaction=True)
async def test_asking_over_the_socket_with_a_collection_id_i_cannot_read_finds_nothing_there(
    chat_model, make_user
):
    _, _, hr_collection, _ = await sync_to_async(hr_world)(make_user)
    eve = await sync_to_async(make_user)(email="eve@example.com")
    tab = await open_socket(eve)
    await tab.send(
        type="ask", request_id="r1", text=hr.SECRET_QUESTION, collection_ids=[hr_collection.pk]
    )
    frames = await tab.frames_until("done", "error")
    await tab.close()
    assert frames and SECRET_WORDS not in json.dumps(frames)
