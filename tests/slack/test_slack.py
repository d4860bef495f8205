"""The Slack door: signatures, retries and duplicates, answers in threads through a real worker."""

import json
import threading
import time
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings
from django.utils import timezone

from assistant.models import Conversation, Feedback, Message
from assistant.slack.models import SlackEventReceipt
from tests.support import processes
from tests.support.answering import scripted_env
from tests.support.knowledge import index_text, make_collection
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.slack import SECRET, TOKEN, direct_message, mention, post_event, signed
from tests.support.slack_server import SlackReply, SlackServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def slack():
    with SlackServer() as server:
        yield server


@pytest.fixture(scope="module")
def llm():
    with ScriptedOpenAI(default=Reply(tokens=["Book through the travel desk [1]."])) as server:
        yield server


@pytest.fixture(scope="module")
def slack_worker(django_db_setup, django_db_blocker, slack, llm):
    with django_db_blocker.unblock():
        # Slack's tasks only (the default queue): a worker on "ingest" too would race the
        # fixtures that index in this process for the same source (SourceBusy).
        worker = processes.start_worker(
            name="slack-worker",
            queues="default",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_BOT_TOKEN=TOKEN,
            SLACK_API_BASE_URL=slack.base_url,
            APP_BASE_URL="https://assistant.example.com",
            **scripted_env(llm),
        )
    yield worker
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(worker)


@pytest.fixture
def configured(slack):
    slack.reset()
    with override_settings(
        SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN=TOKEN, SLACK_API_BASE_URL=slack.base_url
    ):
        yield Client()


@pytest.fixture
def travel(make_user, slack):
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    travellers = Group.objects.create(name="travellers")
    collection = make_collection("Travel", readers=[travellers])
    index_text(
        collection,
        "travel.md",
        "# Travel\n\nBook flights through the travel desk two weeks ahead.",
        user=admin,
    )
    ada = make_user(email="ada@example.com")
    ada.groups.add(travellers)
    slack.users["U1"] = {"email": "ada@example.com", "name": "Ada"}
    slack.users["U2"] = {"email": "bob@example.com", "name": "Bob"}
    make_user(email="bob@example.com")  # no group: cannot read Travel
    return ada


# --- verification, without a worker ------------------------------------------------------------


def test_it_is_404_when_slack_is_not_configured(client):
    assert (
        client.post("/slack/events", data="{}", content_type="application/json").status_code == 404
    )


def test_url_verification_answers_the_challenge(configured):
    response = post_event(configured, {"type": "url_verification", "challenge": "abc123"})
    assert response.status_code == 200 and response.json() == {"challenge": "abc123"}


@pytest.mark.parametrize(
    "headers",
    [
        lambda body: {},
        lambda body: signed(body, secret="wrong-secret"),
        lambda body: signed(body, timestamp=int(time.time()) - 6 * 60),  # stale
        lambda body: {**signed(body), "HTTP_X_SLACK_SIGNATURE": "v0=" + "0" * 64},
    ],
)
def test_a_badly_signed_request_is_401_and_causes_no_work(configured, headers):
    body = json.dumps(mention())
    response = configured.post(
        "/slack/events", data=body, content_type="application/json", **headers(body)
    )
    assert response.status_code == 401
    assert not SlackEventReceipt.objects.exists()


def test_a_replayed_request_with_a_tampered_body_is_refused(configured):
    original = json.dumps(mention())
    headers = signed(original)
    tampered = original.replace("book a flight", "read the CEO's mail")
    assert (
        configured.post(
            "/slack/events", data=tampered, content_type="application/json", **headers
        ).status_code
        == 401
    )


def test_a_malformed_body_is_400(configured):
    body = "{not json"
    response = configured.post(
        "/slack/events", data=body, content_type="application/json", **signed(body)
    )
    assert response.status_code == 400
    assert not SlackEventReceipt.objects.exists()


def test_unknown_events_and_bot_messages_are_acknowledged_without_work(configured):
    for payload in (
        {
            "type": "event_callback",
            "event_id": "E1",
            "event": {"type": "reaction_added", "user": "U1"},
        },
        {
            "type": "event_callback",
            "event_id": "E2",
            "event": {
                "type": "app_mention",
                "bot_id": "B1",
                "user": "U1",
                "text": "hi",
                "channel": "C1",
                "ts": "1.1",
            },
        },
        {
            "type": "event_callback",
            "event_id": "E3",
            "event": {
                "type": "message",
                "channel_type": "channel",
                "user": "U1",
                "text": "hi",
                "channel": "C1",
                "ts": "1.2",
            },
        },
        {"type": "something_else"},
    ):
        assert post_event(configured, payload).status_code == 200
    assert not SlackEventReceipt.objects.exists()


def test_retries_and_concurrent_duplicates_are_recorded_once(configured):
    assert post_event(configured, mention(event_id="EvDup")).status_code == 200
    assert (
        post_event(configured, mention(event_id="EvDup"), HTTP_X_SLACK_RETRY_NUM="1").status_code
        == 200
    )
    statuses = []

    def deliver():
        statuses.append(post_event(Client(), mention(event_id="EvRace")).status_code)

    with override_settings(SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN=TOKEN):
        threads = [threading.Thread(target=deliver) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses == [200] * 5
    assert SlackEventReceipt.objects.filter(key="event:EvDup").count() == 1
    assert SlackEventReceipt.objects.filter(key="event:EvRace").count() == 1


# --- answering through the worker ----------------------------------------------------------


def wait_receipt(key, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = SlackEventReceipt.objects.filter(key=key).first()
        if receipt and receipt.status != SlackEventReceipt.Status.RECEIVED and receipt.handled_at:
            return receipt
        time.sleep(0.1)
    raise AssertionError(f"receipt {key} not handled")


def test_a_direct_message_is_answered_in_its_thread_with_sources_and_feedback_buttons(
    slack_worker, configured, travel, slack, llm
):
    assert post_event(configured, direct_message(event_id="EvA")).status_code == 200
    update = slack.wait_for("chat.update")[0]
    placeholder = slack.calls_to("chat.postMessage")[0]
    assert (
        placeholder.params["thread_ts"] == "1700000000.000001"
        and placeholder.params["channel"] == "D1"
    )
    assert (
        update.params["ts"] == placeholder.response["ts"]
    )  # the placeholder is replaced, not a new post
    assert "travel desk [1]" in update.params["text"]
    blocks_text = json.dumps(update.params["blocks"])
    assert "travel.md" in blocks_text or "Travel" in blocks_text
    assert "feedback_up" in blocks_text and "feedback_down" in blocks_text
    conversation = Conversation.objects.get(origin="slack")
    assert conversation.owner == travel and conversation.slack_thread_ts == "1700000000.000001"
    assert conversation.messages.filter(role="assistant", status="complete").count() == 1


def test_a_mention_in_a_channel_only_draws_on_knowledge_open_to_everyone(
    slack_worker, configured, travel, slack, llm, make_user
):
    """Everyone in the channel reads the answer: Ada may read Travel, but the channel may not."""
    admin = type(travel).objects.get(email="admin@example.com")
    public = make_collection("Open", everyone=True)
    index_text(
        public,
        "flights.md",
        "# Flights\n\nEveryone may book economy flights in the portal.",
        user=admin,
    )
    before = len(llm.requests)
    llm.script(Reply(tokens=["Economy flights are booked in the portal [1]."]))
    post_event(configured, mention(event_id="EvChan"))
    update = slack.wait_for("chat.update")[0]
    sent = json.dumps(update.params)
    assert "travel desk" not in sent and "|Travel>" not in sent
    assert "|Flights>" in sent and "only use knowledge open to everyone" in sent
    prompt = json.dumps(llm.requests[before].body["messages"])
    assert "Everyone may book economy flights" in prompt and "travel desk two weeks" not in prompt


def test_a_retry_while_the_first_delivery_is_being_answered_is_not_answered_twice(
    slack_worker, configured, travel, slack
):
    post_event(configured, mention(event_id="EvB"))
    post_event(configured, mention(event_id="EvB"), HTTP_X_SLACK_RETRY_NUM="1")
    post_event(configured, mention(event_id="EvB"), HTTP_X_SLACK_RETRY_NUM="2")
    slack.wait_for("chat.update")
    # Whatever the retries enqueued has run (the module's worker serves only "default"; the
    # fixtures' index tasks wait on "ingest" for nobody, their sources already indexed here).
    processes.wait_for_idle_workers(queues=("default",))
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(slack.calls_to("chat.update")) == 1


def test_a_slack_user_without_access_never_gets_the_restricted_passages(
    slack_worker, configured, travel, slack, llm
):
    requests_before = len(llm.requests)
    post_event(configured, mention(event_id="EvC", user="U2"))
    update = slack.wait_for("chat.update")[0]
    assert "travel desk" not in json.dumps(update.params)
    assert "couldn't find" in update.params["text"]
    # The model never saw the passage either, and no answer was generated. (Requests from the
    # memory extraction of an earlier test's answer may still arrive here; they are not streamed.)
    later = llm.requests[requests_before:]
    assert not any("travel desk" in json.dumps(r.body) for r in later)
    assert not [r for r in later if r.body.get("stream")]


def test_an_unlinked_slack_user_is_told_how_to_link(slack_worker, configured, travel, slack):
    slack.users["U9"] = {"email": "stranger@elsewhere.example", "name": "Stranger"}
    post_event(configured, mention(event_id="EvD", user="U9"))
    # Only the asker sees the link (ephemeral), never the channel.
    message = slack.wait_for("chat.postEphemeral")[0]
    assert message.params["user"] == "U9"
    assert "https://assistant.example.com/slack/link/" in message.params["text"]
    assert not slack.calls_to("chat.postMessage")
    assert not Conversation.objects.exists()


def test_rate_limits_from_slack_are_retried(slack_worker, configured, travel, slack):
    slack.script(
        "chat.postMessage",
        SlackReply(
            status=429, headers={"Retry-After": "1"}, body={"ok": False, "error": "ratelimited"}
        ),
    )
    post_event(configured, mention(event_id="EvE"))
    slack.wait_for("chat.update", timeout=40)
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 2 and posts[1].at - posts[0].at >= 0.9


def test_a_slack_error_is_recorded_and_the_worker_carries_on(
    slack_worker, configured, travel, slack
):
    slack.script("chat.postMessage", SlackReply(body={"ok": False, "error": "channel_not_found"}))
    post_event(configured, mention(event_id="EvF"))
    receipt = wait_receipt("event:EvF")
    assert (
        receipt.status == SlackEventReceipt.Status.FAILED and "channel_not_found" in receipt.error
    )
    assert slack_worker.alive()


def test_a_slash_command_answers_through_its_response_url(slack_worker, configured, travel, slack):
    body = urlencode(
        {
            "command": "/ask",
            "text": "how do I book a flight?",
            "user_id": "U1",
            "team_id": "T1",
            "response_url": slack.response_url("c1"),
            "trigger_id": "trig-1",
            "channel_id": "C1",
        }
    )
    response = configured.post(
        "/slack/commands",
        data=body,
        content_type="application/x-www-form-urlencoded",
        **signed(body),
    )
    assert response.status_code == 200 and response.json()["response_type"] == "ephemeral"
    answer = slack.wait_for("respond")[0]
    assert "travel desk" in answer.params["text"]


def test_feedback_buttons_rate_only_your_own_answers(configured, travel, slack):
    from accounts.models import SlackIdentity

    conversation = Conversation.objects.create(owner=travel, origin="slack")
    answer = Message.objects.create(conversation=conversation, role="assistant", content="x")
    linked = {"linked_at": timezone.now(), "linked_how": "email"}
    SlackIdentity.objects.create(team_id="T1", slack_user_id="U1", user=travel, **linked)
    bob = type(travel).objects.get(email="bob@example.com")
    SlackIdentity.objects.create(team_id="T1", slack_user_id="U2", user=bob, **linked)

    def click(user, value):
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T1"},
            "actions": [{"action_id": "feedback_down", "value": value}],
        }
        body = urlencode({"payload": json.dumps(payload)})
        return configured.post(
            "/slack/interactions",
            data=body,
            content_type="application/x-www-form-urlencoded",
            **signed(body),
        )

    assert click("U2", f"{answer.pk}:-1").status_code == 200
    assert not Feedback.objects.exists()
    assert click("U1", f"{answer.pk}:-1").status_code == 200
    assert Feedback.objects.get().rating == -1
    assert click("U1", "not-a-uuid:1").status_code == 200


def test_the_slack_door_never_uses_another_users_memory(
    slack_worker, configured, travel, slack, llm, make_user
):
    from assistant.memory import services as memory_services

    admin = type(travel).objects.get(email="admin@example.com")
    public = make_collection("Open", everyone=True)
    index_text(
        public, "canteen.md", "# Canteen\n\nThe canteen serves lunch from noon to two.", user=admin
    )
    memory_services.remember(user=travel, text="I am vegetarian and eat in the canteen every day")
    bob = type(travel).objects.get(email="bob@example.com")
    memory_services.remember(user=bob, text="I eat lunch in the canteen at noon")
    before = len(llm.requests)
    # A direct message: a channel mention uses no memory at all (tests/security/test_slack.py).
    post_event(
        configured,
        direct_message("when does the canteen serve lunch?", event_id="EvMem", user="U2"),
    )
    slack.wait_for("chat.update")
    prompt = llm.requests[before].body["messages"][0]["content"]
    assert "I eat lunch in the canteen at noon" in prompt  # Bob's own memory is used
    assert "vegetarian" not in prompt  # Alice's never is
