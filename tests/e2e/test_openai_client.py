"""The OpenAI-compatible API with the official ``openai`` Python client (sync, async, streaming)
against a real Daphne, the model being a scripted OpenAI-compatible server.

The many refusals are tested in-process (tests/assistant/test_api_v1.py); what needs the real
server is here: OpenAI's own client reading our responses, server-sent events through Daphne,
and a client hanging up mid-stream, which must stop the model request.
"""

from __future__ import annotations

import asyncio

import openai
import pytest
from asgiref.sync import sync_to_async

from assistant.models import Conversation, Message
from knowledge.tokens import token_create
from tests.support import processes
from tests.support.answering import answer_in_db, scripted_env
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ANSWER = ["Book flights through the travel desk ", "fourteen days ahead ", "[1]."]


@pytest.fixture(scope="module")
def llm_server():
    # Module-scoped (the shared one is per test): the module's Daphne is started against it.
    with ScriptedOpenAI(default=None) as server:
        yield server


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, llm_server):
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**scripted_env(llm_server))
    yield f"http://127.0.0.1:{port}"
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc)


@pytest.fixture
def ada(make_user):
    return make_user(email="ada@example.com")


@pytest.fixture
def token(ada, handbook):
    return token_create(user=ada, name="openai client")[1]


def client(server: str, token: str) -> openai.OpenAI:
    # No retries: a refusal must surface as the error it is, once.
    return openai.OpenAI(base_url=f"{server}/v1", api_key=token, max_retries=0, timeout=30)


def aclient(server: str, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=token, max_retries=0, timeout=30)


def test_the_sync_client_lists_the_model_and_gets_an_answer_with_citations(
    server, token, ada, llm_server
):
    llm_server.script(Reply(tokens=ANSWER))
    api = client(server, token)

    assert [m.id for m in api.models.list()] == ["assistant"]
    completion = api.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "How do I book a flight?"}]
    )

    assert completion.choices[0].message.content == "".join(ANSWER)
    assert completion.choices[0].finish_reason == "stop"
    (citation,) = completion.citations  # the extra field, read through the client's model
    assert citation["number"] == 1 and citation["source"] == "travel.md"
    assert citation["collection"] == "Handbook" and "travel desk" in citation["quote"]
    conversation = Conversation.objects.get(pk=completion.conversation_id)
    assert conversation.owner == ada and conversation.origin == "api"


def test_the_sync_client_streams_and_the_last_chunk_carries_the_citations(
    server, token, llm_server
):
    llm_server.script(Reply(tokens=ANSWER, delay=0.01))
    stream = client(server, token).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "Where are flights booked?"}],
        stream=True,
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(ANSWER)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert [c["number"] for c in last.citations] == [1]


async def test_the_async_client_streams_and_continues_the_conversation_it_named(
    server, token, llm_server
):
    llm_server.script(Reply(tokens=ANSWER), Reply(tokens=["Up to 60 euros a day [1]."]))
    api = aclient(server, token)
    first = await api.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "Flights: how early?"}]
    )
    stream = await api.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "And meals abroad?"}],
        stream=True,
        extra_headers={"X-Conversation-Id": first.conversation_id},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await api.close()

    assert text == "Up to 60 euros a day [1]."
    sent = llm_server.chat_requests[-1].body["messages"]
    assert ["Flights: how early?", "".join(ANSWER)] == [m["content"] for m in sent[1:3]]
    count = await Message.objects.filter(conversation_id=first.conversation_id).acount()
    assert count == 4


async def test_the_clients_errors_are_openais_bad_token_someone_elses_conversation(
    server, token, make_user
):
    with pytest.raises(openai.AuthenticationError) as refused:
        await aclient(server, "ast_" + "x" * 43).models.list()
    assert refused.value.body["code"] == "invalid"

    other = await sync_to_async(make_user)(email="bob@example.com")
    theirs = await Conversation.objects.acreate(owner=other, title="Bob's")
    with pytest.raises(openai.NotFoundError) as missing:
        await aclient(server, token).chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "What did Bob ask?"}],
            user=str(theirs.pk),
        )
    assert missing.value.body["code"] == "conversation_not_found"
    assert not await Message.objects.filter(conversation=theirs).aexists()


def test_a_client_that_hangs_up_mid_stream_stops_the_model_and_the_answer_is_saved_stopped(
    server, token, llm_server
):
    llm_server.script(Reply(tokens=["Book "] + ["slowly "] * 400, delay=0.02))
    stream = client(server, token).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "Book a flight, slowly?"}],
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and "slowly" in (chunk.choices[0].delta.content or ""):
            break
    stream.close()  # the client hangs up

    request = llm_server.chat_requests[-1]
    assert request.disconnected.wait(10), "the model request was not closed"
    assert request.tokens_sent < 400
    answer = Message.objects.get(role="assistant", reply_to__content="Book a flight, slowly?")
    answer = asyncio.run(answer_in_db(answer.pk, "stopped", "complete", "failed"))
    assert answer.status == "stopped" and answer.content.startswith("Book slowly")
