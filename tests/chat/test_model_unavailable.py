"""The model is down on every door (issue 15, fault 5): the browser socket (in-process, through
the project's ASGI application), the conversation API and the CLI `ask` share the pipeline, so
each gets the same extractive answer after the same retries and fallback. The policy itself:
tests/assistant/test_model_failures.py."""

from __future__ import annotations

import io

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import Client

from assistant.answering import extractive
from assistant.models import Message
from tests.support.answering import answer_in_db, scripted_settings
from tests.support.openai_server import Reply
from tests.support.sockets import open_socket

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I book a flight?"
DOWN = [Reply.error(500)] * 4  # one retry on the model, one on the fallback: four requests


@pytest.fixture(autouse=True)
def _a_model_with_a_fallback(llm_server, settings):
    values = scripted_settings(
        llm_server,
        LLM_MAX_RETRIES=1,
        LLM_FALLBACK_MODEL="fallback-model",
        LLM_BACKOFF_BASE=0.01,
        LLM_TIMEOUT=5,
    )
    for name, value in values.items():
        setattr(settings, name, value)
    yield
    assert llm_server.pending == 0, "a scripted reply was not used"


def models_asked(llm_server) -> list[str | None]:
    return [r.model for r in llm_server.chat_requests]


async def test_the_socket_gets_the_passages_quoted_and_try_again_asks_the_model_afresh(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(*DOWN)
    client = await open_socket(user)

    await client.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    frames = await client.until_type("done", "error")

    assert models_asked(llm_server) == ["scripted-model"] * 2 + ["fallback-model"] * 2
    retrieval, done = frames[1], frames[-1]
    assert done["type"] == "done", frames
    message = done["message"]
    assert message["status"] == "complete" and message["extractive"] is True
    assert message["model"] == "extractive" and message["content"].startswith(extractive.INTRO)
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert text == message["content"]
    cited = [f for f in frames if f["type"] == "citation"]
    assert cited and all(f["source"]["source_name"] == "travel.md" for f in cited)
    by_number = {s["n"]: s for s in retrieval["sources"]}
    assert all(f["source"] == by_number[f["number"]] for f in cited)

    # Reloaded over HTTP, the answer still says it is extractive, with its citations.
    http = Client()
    await sync_to_async(http.force_login)(user)
    conversation = await sync_to_async(http.get)(
        f"/api/conversations/{retrieval['conversation_id']}"
    )
    shown = conversation.json()["messages"][-1]
    assert shown["extractive"] is True and shown["status"] == "complete"
    assert [c["number"] for c in shown["citations"]] == [f["number"] for f in cited]

    # The model is back: "Try again" (regenerate) writes a real answer as a new version.
    llm_server.script(Reply(tokens=["Book through ", "the travel desk [1]."]))
    await client.send(type="regenerate", request_id="r2", message_id=message["id"])
    again = await client.until_type("done", "error")
    await client.close()
    fresh = again[-1]["message"]
    assert fresh["status"] == "complete" and fresh["extractive"] is False
    assert fresh["content"] == "Book through the travel desk [1]."
    old = await answer_in_db(message["id"], "complete")
    assert old.superseded and old.model == "extractive"


async def test_the_socket_keeps_a_partial_answer_as_failed_when_the_model_dies_mid_answer(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(Reply.error_mid_stream(["Book ", "through ", "the ", "desk"], after=2))
    client = await open_socket(user)

    await client.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    frames = await client.until_type("done", "error")
    await client.close()

    error = frames[-1]
    assert error["type"] == "error" and error["code"] == "llm_stream_broken"
    assert "interrupted" in error["message"]
    assert "".join(f["text"] for f in frames if f["type"] == "delta") == "Book through "
    answer = await answer_in_db(error["message_id"], "failed")
    assert (answer.status, answer.content) == ("failed", "Book through ")
    assert models_asked(llm_server) == ["scripted-model"]  # text was shown: never retried


def test_after_losing_access_the_reader_no_longer_sees_the_quoted_passages(
    llm_server, handbook, make_user
):
    user = make_user()
    llm_server.script(*DOWN)
    call_command("ask", QUESTION, "--user", user.email, stdout=io.StringIO())
    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert "travel desk" in answer.content
    http = Client()
    http.force_login(user)
    url = f"/api/conversations/{answer.conversation_id}"
    assert "travel desk" in http.get(url).json()["messages"][-1]["content"]

    handbook.visibility = handbook.Visibility.GROUPS  # now for named groups only: not theirs
    handbook.save()

    shown = http.get(url).json()["messages"][-1]
    assert "travel desk" not in shown["content"]
    assert f"> [1] {extractive.UNAVAILABLE}" in shown["content"]
    assert shown["extractive"] is True


async def test_attaching_after_losing_access_never_sends_the_quoted_passages(
    llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(*DOWN)
    asking = await open_socket(user)
    await asking.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    await asking.until_type("done")
    await asking.close()
    answer = await Message.objects.aget(role=Message.Role.ASSISTANT)
    assert "travel desk" in answer.content
    handbook.visibility = handbook.Visibility.GROUPS  # now for named groups only: not theirs
    await handbook.asave()

    tab = await open_socket(user)
    await tab.send(type="attach", message_id=str(answer.pk))
    done = (await tab.until_type("done"))[-1]
    await tab.close()
    assert "travel desk" not in done["message"]["content"]
    assert f"> [1] {extractive.UNAVAILABLE}" in done["message"]["content"]


def test_the_cli_ask_prints_the_passages_quoted(llm_server, handbook, admin):
    llm_server.script(*DOWN)
    out, err = io.StringIO(), io.StringIO()

    call_command("ask", QUESTION, "--user", admin.email, stdout=out, stderr=err)

    printed = out.getvalue()
    assert printed.startswith(extractive.INTRO), printed
    assert "> [1] " in printed and "travel desk" in printed
    assert "[1] Travel policy" in printed and "travel.md" in printed  # the numbered sources
    assert err.getvalue() == ""
    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert (answer.status, answer.model) == ("complete", "extractive")
    assert models_asked(llm_server) == ["scripted-model"] * 2 + ["fallback-model"] * 2
