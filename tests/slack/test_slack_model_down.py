"""The Slack door when the model is down (issue 15, fault 5): the thread gets the passages the
asker may read, quoted with their sources, after the same retries and fallback as the chat.

The task's service runs in this process, as the worker would run it (the worker itself is
proven in tests/slack/test_slack.py), against a scripted Slack and a scripted model."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

from assistant.answering import extractive
from assistant.models import Message
from assistant.slack import services
from assistant.slack.models import SlackEventReceipt
from tests.support.answering import scripted_settings
from tests.support.knowledge import index_text, make_collection
from tests.support.openai_server import Reply
from tests.support.slack import SECRET, TOKEN, direct_message
from tests.support.slack_server import SlackServer

pytestmark = pytest.mark.django_db(transaction=True)

TRAVEL = "# Travel\n\nBook flights through the travel desk two weeks ahead."
SECRET_DOC = "# Board travel\n\nBoard members fly with the charter code OSPREY-4."


@pytest.fixture
def slack():
    with SlackServer() as server:
        yield server


@pytest.fixture
def configured(slack, llm_server):
    values = scripted_settings(
        llm_server, LLM_MAX_RETRIES=1, LLM_FALLBACK_MODEL="fallback-model", LLM_BACKOFF_BASE=0.01
    )
    with override_settings(
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_API_BASE_URL=slack.base_url,
        APP_BASE_URL="https://assistant.example.com",
        **values,
    ):
        yield


@pytest.fixture
def ada(make_user, slack):
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    travellers = Group.objects.create(name="travellers")
    index_text(make_collection("Travel", readers=[travellers]), "travel.md", TRAVEL, user=admin)
    board = Group.objects.create(name="board")
    index_text(make_collection("Board", readers=[board]), "board.md", SECRET_DOC, user=admin)
    ada = make_user(email="ada@example.com")
    ada.groups.add(travellers)
    slack.users["U1"] = {"email": "ada@example.com", "name": "Ada"}
    return ada


def test_a_direct_message_gets_the_passages_quoted_when_the_model_is_down(
    configured, ada, slack, llm_server
):
    llm_server.script(*[Reply.error(500)] * 4)
    # Recorded as the webhook records it (tests/slack/test_slack.py drives the webhook), but
    # not enqueued: no task is left in the broker for another module's worker.
    receipt = services.receipt_record(
        key="event:EvDown", kind=SlackEventReceipt.Kind.EVENT, payload=direct_message()
    )

    services.handle_receipt(receipt_id=receipt.pk)  # what the worker's task does

    assert [r.model for r in llm_server.chat_requests] == ["scripted-model"] * 2 + [
        "fallback-model"
    ] * 2
    (update,) = slack.calls_to("chat.update")
    text = update.params["text"]
    assert "isn't available right now" in text and "travel desk" in text
    assert "OSPREY" not in text and "OSPREY" not in json.dumps(update.params["blocks"])
    sources = update.params["blocks"][1]  # the context block naming the passages it quotes
    assert sources["type"] == "context" and "Travel" in json.dumps(sources)
    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert (answer.status, answer.model) == ("complete", extractive.MODEL)
    assert SlackEventReceipt.objects.get(pk=receipt.pk).status == "answered"
