"""One question at a time per conversation, whichever door asks: the chat takes the same claim
as the API and MCP (``services.conversation_claimed``), so a question from the chat while a
script's question is being stored in that conversation is refused as busy (and the other way
round), and the claim goes once the answer row exists."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from assistant import services
from assistant.models import Conversation, Message
from tests.support.answering import scripted_settings
from tests.support.openai_server import Reply
from tests.support.sockets import open_socket

QUESTION = "How do I book a flight?"


@pytest.fixture
def _scripted(llm_server, settings):
    for name, value in scripted_settings(llm_server).items():
        setattr(settings, name, value)


async def _count(conversation_id) -> int:
    return await Message.objects.filter(conversation_id=conversation_id).acount()


@pytest.mark.django_db(transaction=True)
async def test_a_chat_question_while_a_script_holds_the_conversation_is_busy_and_stores_nothing(
    _scripted, llm_server, handbook, make_user
):
    user = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=["First [1]."]), Reply(tokens=["Second [1]."]))
    tab = await open_socket(user)
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    first = (await tab.until_type("done"))[-1]["message"]
    conversation_id = first["conversation_id"]
    before = await _count(conversation_id)

    # An API request is storing its question in this conversation right now.
    await sync_to_async(services.conversation_claim)(conversation_id=conversation_id)
    for frame in (
        {"type": "ask", "conversation_id": conversation_id, "text": "And hotels?"},
        {"type": "regenerate", "message_id": first["id"]},
        {"type": "edit", "message_id": first["id"], "text": "How do I book a train?"},
    ):
        await tab.send(request_id="busy", **frame)
        refused = (await tab.until(lambda f: f["type"] == "error"))[-1]
        assert refused["code"] == "busy", frame
    assert await _count(conversation_id) == before

    # The script's answer row exists: its claim goes, and the chat's question goes through.
    await sync_to_async(services.conversation_release)(conversation_id=conversation_id)
    await tab.send(type="ask", request_id="r2", conversation_id=conversation_id, text="Hotels?")
    await tab.until_type("done")
    await tab.close()
    assert await _count(conversation_id) == before + 2


@pytest.mark.django_db(transaction=True)
async def test_the_chats_claim_goes_once_its_answer_row_exists(
    _scripted, llm_server, handbook, make_user
):
    """Held no longer than needed: a script's question right after the chat's answer started
    is refused by the answer being written, and after it by nothing."""
    user = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=["First [1]."]), Reply(tokens=["Second [1]."]))
    tab = await open_socket(user)
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    first = (await tab.until_type("done"))[-1]["message"]
    await tab.send(
        type="ask", request_id="r2", conversation_id=first["conversation_id"], text="Hotels?"
    )
    await tab.until_type("done")
    await tab.close()

    # Both answers are done: nobody holds the conversation.
    await sync_to_async(services.conversation_claim)(conversation_id=first["conversation_id"])
    await sync_to_async(services.conversation_release)(conversation_id=first["conversation_id"])


# --- the claim itself (services.conversation_claimed) ---------------------------------------


@pytest.mark.django_db
def test_while_one_door_holds_the_claim_another_is_busy_and_asks_nothing(make_user):
    conversation = Conversation.objects.create(owner=make_user(), title="Trip")
    asked = []
    services.conversation_claim(conversation_id=conversation.pk)
    try:
        with pytest.raises(services.Busy):
            services.conversation_claimed(conversation, lambda: asked.append(1))
        assert asked == []
    finally:
        services.conversation_release(conversation_id=conversation.pk)

    result, claimed = services.conversation_claimed(conversation, lambda: "stored")
    assert (result, claimed) == ("stored", conversation.pk)
    services.conversation_release(conversation_id=claimed)


@pytest.mark.django_db
def test_a_question_that_cannot_be_stored_releases_the_claim(make_user):
    conversation = Conversation.objects.create(owner=make_user(), title="Trip")

    def refused():
        raise services.RateLimited("Too many questions.")

    with pytest.raises(services.RateLimited):
        services.conversation_claimed(conversation, refused)

    # Not left held: the next question (from any door) goes through.
    _, claimed = services.conversation_claimed(conversation, lambda: None)
    services.conversation_release(conversation_id=claimed)


@pytest.mark.django_db
def test_a_new_conversation_or_a_slack_thread_takes_no_claim(make_user):
    slack = Conversation.objects.create(owner=make_user(), title="Thread", origin="slack")
    services.conversation_claim(conversation_id=slack.pk)  # a Slack answer is being written
    try:
        assert services.conversation_claimed(None, lambda: "new") == ("new", None)
        # The chat's question starts a conversation of its own: nothing to wait for.
        assert services.conversation_claimed(slack, lambda: "own") == ("own", None)
    finally:
        services.conversation_release(conversation_id=slack.pk)
