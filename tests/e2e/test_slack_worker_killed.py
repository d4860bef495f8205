"""A Slack question whose worker is killed (SIGKILL) mid-answer is answered exactly once by
another worker, in the first attempt's placeholder. Real Celery workers with a short answer
lease (tests/slack/short_lease_settings.py), a Slack Web API and a model on 127.0.0.1."""

from __future__ import annotations

import signal
import time

import pytest
from django.test import Client, override_settings

from assistant.slack.models import SlackEventReceipt
from tests.support import processes, scenarios
from tests.support.answering import scripted_env
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.slack import SECRET, TOKEN, direct_message, post_event
from tests.support.slack_server import SlackServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BASE = "https://assistant.example.com"


@pytest.fixture
def slack():
    with SlackServer() as server:
        yield server


@pytest.fixture
def llm():
    with ScriptedOpenAI(default=Reply(tokens=["Book through the portal [1]."])) as server:
        yield server


@pytest.fixture
def ada(make_user, slack):
    return scenarios.slack_ada(make_user, slack)


@pytest.fixture
def public_knowledge(make_user):
    return scenarios.public_travel_knowledge(make_user)


def test_a_question_whose_worker_is_killed_mid_answer_is_answered_exactly_once_by_another(
    slack, llm, ada, public_knowledge
):
    slack.reset()
    slack.users["U1"] = {"email": "ada@example.com", "name": "Ada"}
    llm.script(Reply.hanging())  # the first worker's answer never comes
    env = dict(
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_API_BASE_URL=slack.base_url,
        **scripted_env(llm),
        APP_BASE_URL=BASE,
        DJANGO_SETTINGS_MODULE="tests.slack.short_lease_settings",
    )
    asked = len(llm.chat_requests)
    first = processes.start_worker(name="slack-doomed", **env)
    second = None
    try:
        with override_settings(
            SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN=TOKEN, SLACK_API_BASE_URL=slack.base_url
        ):
            post_event(Client(), direct_message(event_id="EvKill"))
        (placeholder,) = slack.wait_for("chat.postMessage")
        llm.wait_for_requests(asked + 1, timeout=30)
        first.kill(signal.SIGKILL)
        first.proc.wait(10)
        receipt = SlackEventReceipt.objects.get(key="event:EvKill")
        assert receipt.status == "handling" and receipt.attempts == 1
        second = processes.start_worker(name="slack-rescuer", CELERY_VISIBILITY_TIMEOUT="2", **env)
        (update,) = slack.wait_for("chat.update", timeout=60)
        deadline = time.monotonic() + 30
        while (
            SlackEventReceipt.objects.get(pk=receipt.pk).status == "handling"
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        receipt.refresh_from_db()
        assert receipt.status == "answered" and receipt.attempts == 2
        # Answered once, in the first attempt's placeholder: no second placeholder, no second answer.
        assert (
            "portal" in update.params["text"] and update.params["ts"] == placeholder.response["ts"]
        )
        assert (
            len(slack.calls_to("chat.postMessage")) == 1 and len(slack.calls_to("chat.update")) == 1
        )
    finally:
        first.stop()
        if second is not None:
            processes.stop_and_discard_late_writes(second)
