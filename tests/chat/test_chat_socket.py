"""The chat protocol (docs/websocket-protocol.md) through the project's ASGI application in
this process (Channels' WebsocketCommunicator: Origin check, session auth, the consumer), the
real Redis channel layer and PostgreSQL, with a scripted OpenAI-compatible server as the model.
Two processes sharing the work: tests/e2e/test_sockets_across_processes.py."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async

from assistant.models import Conversation, Feedback, Message
from tests.support.answering import answer_in_db, scripted_settings
from tests.support.openai_server import Reply
from tests.support.sockets import Socket, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I book a flight?"
MAX_CHARS = 500


@pytest.fixture(autouse=True)
def _answering_with_the_scripted_model(llm_server, settings):
    for name, value in scripted_settings(llm_server, CHAT_MAX_QUESTION_CHARS=MAX_CHARS).items():
        setattr(settings, name, value)
    yield
    assert llm_server.pending == 0, "a scripted reply was not used"


async def ask(client: Socket, text: str = QUESTION, conversation_id=None, request_id="r1"):
    await client.send(type="ask", request_id=request_id, conversation_id=conversation_id, text=text)


def snapshot(user) -> list[tuple]:
    rows = Message.objects.filter(conversation__owner=user).order_by("created_at")
    return [
        (str(m.pk), m.role, m.content, m.status, m.superseded, m.conversation.title)
        for m in rows.select_related("conversation")
    ] + [("feedback", f.rating, f.comment) for f in Feedback.objects.filter(user=user)]


# --- the answer stream ------------------------------------------------------------------


async def test_an_answer_streams_in_batched_deltas_with_citations_and_is_stored(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    tokens = ["Book "] + [f"t{i} " for i in range(58)] + ["[1]."]
    llm_server.script(Reply(tokens=tokens, delay=0.002))
    client = await open_socket(user)

    await ask(client)
    frames = await client.until_type("done")
    await client.close()

    types = [f["type"] for f in frames]
    ack, retrieval = frames[0], frames[1]
    assert types[:2] == ["ack", "retrieval"] and types[-1] == "done"
    assert ack["request_id"] == "r1" and ack["conversation_id"] == retrieval["conversation_id"]
    assert retrieval["question_id"] == ack["question_id"]
    assert any("travel desk" in s["text"] for s in retrieval["sources"])
    deltas = [f for f in frames if f["type"] == "delta"]
    assert "".join(d["text"] for d in deltas) == "".join(tokens)
    assert all(d["message_id"] == retrieval["message_id"] for d in deltas)
    # 60 tokens 2 ms apart come as a handful of frames, not one per token.
    assert 1 <= len(deltas) <= 15, len(deltas)
    (citation,) = [f for f in frames if f["type"] == "citation"]
    assert citation["number"] == 1 and citation["source"]["source_name"] == "travel.md"
    done = frames[-1]["message"]
    assert done["id"] == retrieval["message_id"] and done["status"] == "complete"

    question = await Message.objects.aget(pk=ack["question_id"])
    answer = await Message.objects.aget(pk=done["id"])
    assert (question.role, question.content) == ("user", QUESTION)
    assert answer.role == "assistant" and answer.status == "complete"
    assert answer.content == "".join(tokens) and answer.reply_to_id == question.pk
    assert [c.number async for c in answer.citations.all()] == [1]
    conversation = await Conversation.objects.aget(pk=ack["conversation_id"])
    assert conversation.owner_id == user.pk and conversation.title == QUESTION


async def test_stop_cancels_the_model_request_and_saves_a_stopped_answer(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=[f"w{i} " for i in range(400)], delay=0.02))
    client = await open_socket(user)
    await ask(client)
    frames = await client.until(lambda f: f["type"] == "delta" and len(f["text"]) > 0)
    message_id = next(f["message_id"] for f in frames if f["type"] == "retrieval")

    await client.send(type="stop", message_id=message_id)
    done = (await client.until_type("done"))[-1]
    await client.close()

    assert (
        done["message"] == {"id": message_id, "status": "stopped"}
        or done["message"]["status"] == "stopped"
    )
    answer = await answer_in_db(message_id, "stopped")
    assert answer.status == "stopped" and answer.content.startswith("w0 ")
    request = llm_server.chat_requests[-1]
    assert await asyncio.to_thread(request.disconnected.wait, 5), "the model request was not closed"
    assert request.tokens_sent < 400


async def test_closing_the_socket_mid_answer_still_completes_and_stores_it(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    tokens = [f"w{i} " for i in range(40)]
    llm_server.script(Reply(tokens=tokens, delay=0.02))
    client = await open_socket(user)
    await ask(client)
    frames = await client.until_type("delta")
    message_id = next(f["message_id"] for f in frames if f["type"] == "retrieval")
    await client.close()  # the tab goes away mid-answer

    answer = await answer_in_db(message_id, "complete", "failed", "stopped")
    assert answer.status == "complete"
    assert answer.content == "".join(tokens)
    request = llm_server.chat_requests[-1]
    assert await asyncio.to_thread(request.done.wait, 5)
    assert request.finished and not request.disconnected.is_set()


# --- who may do what --------------------------------------------------------------------


async def test_another_users_ids_are_not_found_and_nothing_changes(llm_server, handbook, make_user):
    alice = await sync_to_async(make_user)(email="alice@example.com")
    mallory = await sync_to_async(make_user)(email="mallory@example.com")
    llm_server.script(Reply(tokens=[f"w{i} " for i in range(30)], delay=0.03))
    a = await open_socket(alice)
    await ask(a)
    frames = await a.until_type("delta")
    ack = frames[0]
    retrieval = next(f for f in frames if f["type"] == "retrieval")
    answer_id, question_id = retrieval["message_id"], ack["question_id"]

    # While Alice's answer streams, Mallory tries every id-taking frame with Alice's ids.
    m = await open_socket(mallory)
    attempts = [
        {"type": "stop", "message_id": answer_id},
        {"type": "regenerate", "request_id": "x1", "message_id": answer_id},
        {"type": "edit", "request_id": "x2", "message_id": question_id, "text": "hijacked"},
        {"type": "feedback", "message_id": answer_id, "rating": -1, "comment": "spam"},
        {
            "type": "ask",
            "request_id": "x3",
            "conversation_id": ack["conversation_id"],
            "text": "mine now",
        },
        {"type": "stop", "message_id": "not-a-uuid"},
        {"type": "ask", "request_id": "x4", "conversation_id": str(uuid.uuid4()), "text": "hello"},
    ]
    for attempt in attempts:
        await m.send(**attempt)
        reply = await m.recv()
        assert (reply["type"], reply["code"]) == ("error", "not_found"), (attempt, reply)

    await a.until_type("done")
    await a.close()
    answer = await Message.objects.aget(pk=answer_id)
    assert answer.status == "complete"  # Mallory's stop did not stop it
    await m.send(type="feedback", message_id=answer_id, rating=1)  # also once it is finished
    assert (await m.recv())["code"] == "not_found"
    await m.send(type="regenerate", request_id="x5", message_id=answer_id)
    assert (await m.recv())["code"] == "not_found"
    await m.close()

    before = await sync_to_async(snapshot)(alice)
    assert [row[1:5] for row in before] == [
        ("user", QUESTION, "complete", False),
        ("assistant", answer.content, "complete", False),
    ]
    assert await Message.objects.filter(conversation__owner=mallory).acount() == 0
    assert await Conversation.objects.filter(owner=mallory).acount() == 0
    assert await Feedback.objects.acount() == 0
    sent_to_model = json.dumps([r.body for r in llm_server.chat_requests])
    assert "hijacked" not in sent_to_model and "mine now" not in sent_to_model


async def test_a_question_over_the_limit_is_refused_and_not_stored(make_user):
    user = await sync_to_async(make_user)()
    client = await open_socket(user)
    await ask(client, text="x" * (MAX_CHARS + 1), request_id="long")
    reply = await client.recv()
    await client.close()
    assert (
        reply["type"] == "error" and reply["code"] == "too_long" and reply["request_id"] == "long"
    )
    assert f"{MAX_CHARS}" in reply["message"]
    assert await Message.objects.acount() == 0
    assert await Conversation.objects.acount() == 0


async def test_asking_too_fast_is_rate_limited(make_user, settings):
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 2
    # Nothing is indexed, so each answer is the quick "nothing found" without the model. The
    # window opens at the first question: no clock-minute boundary to wait for.
    user = await sync_to_async(make_user)()
    client = await open_socket(user)
    for n in range(2):
        await ask(client, text=f"question {n}", request_id=f"ok{n}")
        frames = await client.until_type("done", "error")
        assert frames[-1]["type"] == "done", frames[-1]
    await ask(client, text="one too many", request_id="late")
    reply = await client.until_type("error")
    await client.close()
    assert reply[-1]["code"] == "rate_limited" and reply[-1]["request_id"] == "late"
    contents = [m.content async for m in Message.objects.filter(role="user").order_by("created_at")]
    assert contents == ["question 0", "question 1"]


# --- coarse events ----------------------------------------------------------------------


async def test_every_tab_of_the_user_hears_about_the_conversation_and_nobody_else(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    stranger = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=["Through the desk [1]."]))
    asking, other_tab = await open_socket(user), await open_socket(user)
    outsider = await open_socket(stranger)

    await ask(asking)
    frames = await asking.until_type("done")
    conversation_id = frames[0]["conversation_id"]
    message_id = frames[-1]["message"]["id"]

    def finished(f):
        return f["type"] == "message.finished" and f["message_id"] == message_id

    seen = await other_tab.until(finished)
    created = [f for f in seen if f["type"] == "conversation.created"]
    assert created and created[0]["conversation"]["id"] == conversation_id
    assert created[0]["conversation"]["title"] == QUESTION
    assert seen[-1] == {
        "type": "message.finished",
        "conversation_id": conversation_id,
        "message_id": message_id,
        "status": "complete",
    }
    # The asking tab gets them too, besides its own stream (message.finished may come before
    # or after its "done"); the other tab gets no stream.
    if not any(finished(f) for f in frames):
        frames += await asking.until(finished)
    assert any(f["type"] == "conversation.created" for f in frames)
    assert not any(f["type"] in ("ack", "retrieval", "delta", "done") for f in seen)
    # Everything this answer sent went out before its "done": a sentinel sent now arrives
    # after anything that was sent to the outsider, and nothing came before it.
    assert await outsider.drained() == []
    for client in (asking, other_tab, outsider):
        await client.close()
