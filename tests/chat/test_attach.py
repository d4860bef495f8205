"""A tab (re)opened mid-answer attaches to it (docs/websocket-protocol.md, ``attach``): the text
so far, then the live frames, every piece of text exactly once, and Stop works from that tab.
In-process sockets (open_socket), the real Redis and PostgreSQL, a scripted slow model."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import Group

from assistant.answering.generation import _recording
from assistant.answering.replay import FINISHED_TTL_SECONDS, Recorder, _Text, buffer_key
from assistant.models import Conversation, Message
from tests.support.answering import answer_in_db, scripted_settings
from tests.support.knowledge import index_text, make_collection
from tests.support.openai_server import Reply
from tests.support.sockets import Socket, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I book a flight?"


@pytest.fixture(autouse=True)
def _answering_with_the_scripted_model(llm_server, settings):
    for name, value in scripted_settings(llm_server).items():
        setattr(settings, name, value)
    yield
    assert llm_server.pending == 0, "a scripted reply was not used"


async def start_answer(tab: Socket) -> tuple[str, str]:
    """Asks, waits for the first text; (answer id, question id)."""
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    frames = await tab.until_type("delta")
    retrieval = next(f for f in frames if f["type"] == "retrieval")
    return retrieval["message_id"], retrieval["question_id"]


def followed_text(frames: list[dict]) -> str:
    (attached,) = [f for f in frames if f["type"] == "attached"]
    return attached["text"] + "".join(f["text"] for f in frames if f["type"] == "delta")


async def test_a_second_tab_attached_mid_answer_gets_all_the_text_exactly_once(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    tokens = [f"w{i} " for i in range(60)] + ["[1]."]
    llm_server.script(Reply(tokens=tokens, delay=0.02))
    asking = await open_socket(user)
    answer_id, _ = await start_answer(asking)
    await asking.until(lambda f: f["type"] == "delta" and "w10" in f["text"])

    reloaded = await open_socket(user)
    await reloaded.send(type="attach", message_id=answer_id)
    frames = await reloaded.until_type("done")
    await asking.until_type("done")
    for tab in (asking, reloaded):
        await tab.close()

    assert frames[0]["type"] == "attached" and frames[0]["message_id"] == answer_id
    assert frames[0]["text"].startswith("w0 w1 ")  # the text so far comes at once
    assert followed_text(frames) == "".join(tokens)
    assert frames[-1]["message"]["status"] == "complete"
    cited = [f for f in frames if f["type"] == "citation"] + frames[0]["citations"]
    assert [c["number"] for c in cited] == [1]


async def test_stop_from_the_attached_tab_stops_the_answer(llm_server, handbook, make_user):
    user = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=[f"w{i} " for i in range(400)], delay=0.02))
    asking = await open_socket(user)
    answer_id, _ = await start_answer(asking)

    reloaded = await open_socket(user)
    await reloaded.send(type="attach", message_id=answer_id)
    await reloaded.until(lambda f: f["type"] == "delta")
    await reloaded.send(type="stop", message_id=answer_id)
    frames = await reloaded.until_type("done")
    await asking.until_type("done")
    for tab in (asking, reloaded):
        await tab.close()

    assert frames[-1]["message"]["status"] == "stopped"
    answer = await answer_in_db(answer_id, "stopped")
    assert answer.status == "stopped"
    assert followed_text(reloaded.seen) == answer.content
    request = llm_server.chat_requests[-1]
    assert await asyncio.to_thread(request.disconnected.wait, 5), "the model request was not closed"
    assert request.tokens_sent < 400


async def test_attaching_to_a_finished_answer_gives_the_final_message(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=["Through the travel desk [1]."]))
    asking = await open_socket(user)
    await asking.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    done = (await asking.until_type("done"))[-1]["message"]
    await asking.close()

    reloaded = await open_socket(user)
    await reloaded.send(type="attach", message_id=done["id"])
    final = await reloaded.recv()
    await reloaded.close()
    assert final["type"] == "done"
    assert final["message"]["id"] == done["id"] and final["message"]["status"] == "complete"
    assert final["message"]["content"] == "Through the travel desk [1]."


def _answer_marked_about_a_passage_now_unreadable(user, admin) -> str:
    """A finished answer whose citation check marked a sentence about passage 1, a passage of a
    collection the user can no longer read: the mark says what that text does not contain."""
    group = Group.objects.create(name="hr")
    hr = make_collection("HR", readers=[group])
    source = index_text(hr, "pay.md", "# Pay\n\nThe band is 123456 kroner.", user=admin)
    conversation = Conversation.objects.create(owner=user, title="Pay")
    question = Message.objects.create(conversation=conversation, role="user", content="Band?")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="It is 80 kroner [1].",
        reply_to=question,
        status=Message.Status.COMPLETE,
        sources=[{"n": 1, "source_id": source.pk, "collection_id": hr.pk, "text": "secret"}],
        unsupported=[{"sentence": "It is 80 kroner [1].", "numbers": [1], "reason": "80"}],
    )
    return str(answer.pk)


async def test_attaching_to_a_finished_answer_never_sends_marks_about_passages_it_lost(
    llm_server, make_user, admin
):
    user = await sync_to_async(make_user)(email="left-hr@example.com")
    answer_id = await sync_to_async(_answer_marked_about_a_passage_now_unreadable)(user, admin)

    tab = await open_socket(user)
    await tab.send(type="attach", message_id=answer_id)
    final = await tab.recv()
    await tab.close()
    assert final["type"] == "done" and final["message"]["status"] == "complete"
    assert final["message"]["unsupported"] == []  # the conversation API filters them by access


async def test_attaching_to_someone_elses_answer_is_not_found(llm_server, handbook, make_user):
    alice = await sync_to_async(make_user)(email="alice@example.com")
    mallory = await sync_to_async(make_user)(email="mallory@example.com")
    llm_server.script(Reply(tokens=[f"secret{i} " for i in range(60)], delay=0.02))
    a = await open_socket(alice)
    answer_id, question_id = await start_answer(a)

    m = await open_socket(mallory)
    for message_id in (answer_id, question_id, str(uuid.uuid4()), "not-a-uuid", None, ["x"]):
        await m.send(type="attach", message_id=message_id)
        reply = await m.recv()
        assert (reply["type"], reply["code"]) == ("error", "not_found"), (message_id, reply)
    await a.until_type("done")
    await a.close()
    # Nothing of Alice's answer reached Mallory: a sentinel arrives with nothing before it.
    assert await m.drained() == []
    await m.close()


async def test_attaching_to_a_question_is_not_found(llm_server, handbook, make_user):
    user = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=["One [1]."]))
    tab = await open_socket(user)
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    question_id = (await tab.until_type("done"))[0]["question_id"]
    await tab.send(type="attach", message_id=question_id)
    # The answer's own events (message.finished) may still arrive first.
    reply = (await tab.until_type("error", "attached"))[-1]
    await tab.close()
    assert (reply["type"], reply["code"]) == ("error", "not_found")


def test_text_already_saved_is_not_sent_again():
    """The saved checkpoint can run ahead of the buffer by a batch: a delta overlapping it
    sends only its new part, one it covers sends nothing, one past a gap sends all of it."""
    text = _Text("w0 w1 ")
    assert text.add(0, "w0 ") == ""
    assert text.add(3, "w1 w2 ") == "w2 "
    assert text.add(9, "w3 ") == "w3 "
    assert text.text == "w0 w1 w2 w3 "


async def test_a_redis_that_never_answers_does_not_hold_up_the_asking_tabs_frames():
    """The replay buffer is written after each frame is sent: a Redis that accepts connections
    and never replies (a real TCP server here) costs the asking tab nothing."""
    hung: list[asyncio.StreamWriter] = []

    async def accept_and_ignore(reader, writer):
        hung.append(writer)

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=30)
    sent: list[dict] = []

    async def send(frame: dict) -> None:
        sent.append(frame)

    emit = _recording(send, Recorder(client, str(uuid.uuid4())))
    frames = [{"type": "delta", "message_id": "m", "text": f"w{i} "} for i in range(50)]
    async with asyncio.timeout(5):
        for frame in frames:
            await emit(frame)
    assert sent == frames
    for writer in hung:
        writer.close()
    server.close()
    await client.aclose()


async def test_frames_reach_the_replay_buffer_in_the_order_they_were_sent():
    """Frames sent faster than Redis answers are written in their order, batched, and an
    attaching tab rebuilds the exact text; the buffer ends with the answer's end."""
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    message_id = str(uuid.uuid4())
    recorder = Recorder(client, message_id)
    pieces = [f"w{i} " for i in range(300)]
    for piece in pieces:
        recorder.record({"type": "delta", "message_id": message_id, "text": piece})
    recorder.record({"type": "done", "message": {"id": message_id, "status": "complete"}})
    await recorder.drained()
    entries = await client.xrange(buffer_key(message_id))
    decoded = [json.loads(fields[b"e"]) for _, fields in entries]
    assert [e["frame"].get("text") for e in decoded[:-1]] == pieces
    assert [e["offset"] for e in decoded[:-1]] == [len("".join(pieces[:i])) for i in range(300)]
    assert decoded[-1]["frame"]["type"] == "done"
    assert 0 < await client.ttl(buffer_key(message_id)) <= FINISHED_TTL_SECONDS
    await client.delete(buffer_key(message_id))
    await client.aclose()
