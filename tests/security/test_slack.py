"""Attacks through Slack: borrowing someone's account by email, hostile text and links in answers,
flooding, private context leaking into a channel, and questions lost when a worker dies."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.core import signing
from django.test import Client, override_settings

from accounts.models import AuditEvent, SlackIdentity
from assistant.memory import services as memory_services
from assistant.models import Conversation, Message
from assistant.slack import formatting, linking
from assistant.slack.models import SlackEventReceipt
from knowledge.models import Document, Source
from tests.support import scenarios
from tests.support.answering import scripted_settings
from tests.support.knowledge import index_text, make_collection
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.slack import SECRET, TOKEN, direct_message, mention, post_event, signed
from tests.support.slack_server import SlackServer

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "https://assistant.example.com"


@pytest.fixture(scope="module")
def slack():
    with SlackServer() as server:
        yield server


@pytest.fixture(scope="module")
def llm():
    with ScriptedOpenAI(default=Reply(tokens=["Book through the portal [1]."])) as server:
        yield server


@pytest.fixture
def configured(slack, llm):
    """The webhook with Celery eager: the task runs inside the request, in this process."""
    from assistant.project.celery import app

    slack.reset()
    slack.team_id = "T1"
    slack.users.clear()
    slack.threads.clear()
    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    with override_settings(
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_API_BASE_URL=slack.base_url,
        **scripted_settings(llm),
        APP_BASE_URL=BASE,
        SLACK_UNLINKED_USERS="refuse",
        SSO_ALLOWED_DOMAINS=[],
        CHAT_RATE_LIMIT_PER_MINUTE=0,
    ):
        yield Client()
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def ada(make_user, slack):
    return scenarios.slack_ada(make_user, slack)


@pytest.fixture
def public_knowledge(make_user):
    return scenarios.public_travel_knowledge(make_user)


def streamed(llm, since: int) -> list:
    return [r for r in llm.requests[since:] if r.body.get("stream")]


def refused_reasons() -> list[str]:
    return [
        e.detail["reason"]
        for e in AuditEvent.objects.filter(action=AuditEvent.Action.SLACK_LINK_REFUSED)
    ]


# --- item 3: linking Slack users to accounts -------------------------------------------------


@pytest.mark.parametrize(
    ("slack_profile", "reason"),
    [
        ({"is_email_confirmed": False}, "email_unconfirmed"),
        ({"deleted": True}, "deleted"),
        ({"is_bot": True}, "bot"),
        ({"is_restricted": True}, "guest"),
        ({"is_ultra_restricted": True}, "guest"),
        ({"is_stranger": True}, "stranger"),
        ({"team_id": "T2"}, "other_team"),
    ],
)
def test_a_slack_user_claiming_someones_email_without_slacks_word_is_not_linked_to_their_account(
    configured, slack, make_user, slack_profile, reason
):
    victim = make_user(email="cfo@example.com")
    slack.users["U6"] = {"email": "cfo@example.com", "name": "Not the CFO", **slack_profile}
    mapped = linking.account_for_slack_user(team_id="T1", slack_user_id="U6")
    assert mapped.user is None and mapped.link_url.startswith(f"{BASE}/slack/link/")
    identity = SlackIdentity.objects.get(slack_user_id="U6")
    assert identity.user is None and identity.linked_at is None
    assert refused_reasons() == [reason]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SLACK_LINKED).exists()
    assert victim.slack_identities.count() == 0


def test_a_delivery_from_another_workspace_is_never_linked_by_email(configured, slack, make_user):
    """Signed by Slack, but from a workspace our bot token does not belong to."""
    make_user(email="cfo@example.com")
    slack.users["U6"] = {"email": "cfo@example.com", "name": "CFO?", "team_id": "TOTHER"}
    mapped = linking.account_for_slack_user(team_id="TOTHER", slack_user_id="U6")
    assert mapped.user is None
    assert refused_reasons() == ["other_workspace"]


def test_an_email_outside_the_allowed_domains_is_not_linked(configured, slack, make_user):
    make_user(email="ada@partner.example")
    slack.users["U6"] = {"email": "ada@partner.example", "name": "Ada"}
    with override_settings(SSO_ALLOWED_DOMAINS=["example.com"]):
        assert linking.account_for_slack_user(team_id="T1", slack_user_id="U6").user is None
    assert refused_reasons() == ["domain"]


def test_a_superuser_is_never_linked_automatically_even_with_a_confirmed_email(
    configured, slack, make_user
):
    make_user(email="root@example.com", is_staff=True, is_superuser=True)
    slack.users["U6"] = {"email": "root@example.com", "name": "Root"}
    assert linking.account_for_slack_user(team_id="T1", slack_user_id="U6").user is None
    assert refused_reasons() == ["superuser"]


@pytest.mark.parametrize("slack_user_id", ["", "u1", "U1/../U2", "U" * 40, "U1\n", "<!channel>"])
def test_a_malformed_slack_user_id_maps_to_nobody_and_stores_nothing(
    configured, slack, ada, slack_user_id
):
    assert linking.account_for_slack_user(
        team_id="T1", slack_user_id=slack_user_id
    ) == linking.Mapped(None)
    assert not SlackIdentity.objects.exists() and not slack.calls


def test_a_confirmed_full_member_is_linked_automatically_and_it_is_audited(configured, slack, ada):
    mapped = linking.account_for_slack_user(team_id="T1", slack_user_id="U1")
    assert mapped.user == ada and mapped.link_url == ""
    identity = SlackIdentity.objects.get(slack_user_id="U1")
    assert identity.user == ada and identity.linked_how == "email" and identity.linked_at
    event = AuditEvent.objects.get(action=AuditEvent.Action.SLACK_LINKED)
    assert event.actor is None and event.subject == ada
    assert event.detail == {"team": "T1", "slack_user_id": "U1", "how": "email"}


def test_a_link_made_earlier_by_an_unverified_email_is_dropped(configured, slack, make_user):
    victim = make_user(email="cfo@example.com")
    SlackIdentity.objects.create(team_id="T1", slack_user_id="U6", user=victim)  # before the rules
    slack.users["U6"] = {"email": "cfo@example.com", "name": "CFO?", "is_email_confirmed": False}
    assert linking.account_for_slack_user(team_id="T1", slack_user_id="U6").user is None
    assert SlackIdentity.objects.get(slack_user_id="U6").user is None


def test_an_unlinked_user_in_public_mode_gets_a_fresh_public_only_account_never_an_existing_one(
    configured, slack, make_user
):
    victim = make_user(email="cfo@example.com", is_staff=True)
    slack.users["U6"] = {"email": "cfo@example.com", "name": "CFO?", "is_email_confirmed": False}
    with override_settings(SLACK_UNLINKED_USERS="public"):
        mapped = linking.account_for_slack_user(team_id="T1", slack_user_id="U6")
        again = linking.account_for_slack_user(team_id="T1", slack_user_id="U6")
    stand_in = mapped.user
    assert stand_in.pk != victim.pk and again.user.pk == stand_in.pk
    assert stand_in.email == "slack+t1-u6@slack.invalid"
    assert (
        not stand_in.has_usable_password()
        and not stand_in.is_staff
        and not stand_in.groups.exists()
    )
    assert mapped.link_url  # they can still link their real account


def test_public_mode_never_attaches_to_an_account_already_holding_the_provisional_address(
    configured, slack, make_user
):
    squatter = make_user(email="slack+t1-u6@slack.invalid", is_staff=True)
    slack.users["U6"] = {"email": "x@example.com", "name": "X", "is_email_confirmed": False}
    with override_settings(SLACK_UNLINKED_USERS="public"):
        mapped = linking.account_for_slack_user(team_id="T1", slack_user_id="U6")
    assert mapped.user is None
    assert SlackIdentity.objects.get(slack_user_id="U6").user is None
    assert squatter.slack_identities.count() == 0


def test_an_unlinked_mention_gets_a_private_link_and_no_answer(
    configured, slack, llm, make_user, public_knowledge
):
    make_user(email="cfo@example.com")
    slack.users["U6"] = {"email": "cfo@example.com", "name": "CFO?", "is_email_confirmed": False}
    before = len(llm.requests)
    post_event(configured, mention(event_id="EvLink", user="U6"))
    (ephemeral,) = slack.calls_to("chat.postEphemeral")
    assert ephemeral.params["user"] == "U6" and f"{BASE}/slack/link/" in ephemeral.params["text"]
    assert not slack.calls_to("chat.postMessage") and not streamed(llm, before)
    assert SlackEventReceipt.objects.get(key="event:EvLink").status == "ignored"


def _link_for(slack, slack_user_id="U6") -> str:
    slack.users[slack_user_id] = {
        "email": "someone@example.com",
        "name": "Someone",
        "is_email_confirmed": False,
    }
    url = linking.account_for_slack_user(team_id="T1", slack_user_id=slack_user_id).link_url
    return url.removeprefix(BASE)


def test_the_link_binds_the_slack_identity_only_after_the_person_signs_in_and_confirms(
    configured, slack, ada
):
    path = _link_for(slack)
    response = Client().get(path)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ada)
    page = browser.get(path)
    assert page.status_code == 200 and b"slack-link-confirm" in page.content
    assert SlackIdentity.objects.get(slack_user_id="U6").user is None  # opening it binds nothing
    assert browser.post(path).status_code == 403  # no CSRF token: refused
    token = page.context["csrf_token"] if page.context else browser.cookies["csrftoken"].value
    done = browser.post(path, {"csrfmiddlewaretoken": str(token)})
    assert done.status_code == 200 and b"slack-link-done" in done.content
    identity = SlackIdentity.objects.get(slack_user_id="U6")
    assert identity.user == ada and identity.linked_how == "link" and identity.link_nonce == ""
    event = AuditEvent.objects.get(action=AuditEvent.Action.SLACK_LINKED)
    assert event.actor == ada and event.detail == {
        "team": "T1",
        "slack_user_id": "U6",
        "how": "link",
    }
    assert linking.account_for_slack_user(team_id="T1", slack_user_id="U6").user == ada


def test_a_used_link_cannot_bind_the_identity_to_someone_else(configured, slack, ada, make_user):
    path = _link_for(slack)
    first = Client()
    first.force_login(ada)
    assert first.post(path).status_code == 200
    mallory = Client()
    mallory.force_login(make_user(email="mallory@example.com"))
    assert mallory.get(path).status_code == 410
    assert mallory.post(path).status_code == 410
    assert SlackIdentity.objects.get(slack_user_id="U6").user == ada


def test_a_newer_link_replaces_the_older_one(configured, slack, ada):
    older = _link_for(slack)
    _link_for(slack)
    browser = Client()
    browser.force_login(ada)
    assert browser.post(older).status_code == 410
    assert SlackIdentity.objects.get(slack_user_id="U6").user is None


def test_an_expired_link_is_refused(configured, slack, ada):
    path = _link_for(slack)
    identity = SlackIdentity.objects.get(slack_user_id="U6")

    class LongAgo(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - linking.LINK_MAX_AGE - 60)

    token = LongAgo(salt=linking.LINK_SALT).sign_object(
        {"t": "T1", "u": "U6", "n": identity.link_nonce}, compress=False
    )
    browser = Client()
    browser.force_login(ada)
    assert browser.post(f"/slack/link/{token}").status_code == 410
    assert b"expired" in browser.get(f"/slack/link/{token}").content
    assert browser.get(path).status_code == 200  # the same nonce in a fresh link still works
    assert SlackIdentity.objects.get(slack_user_id="U6").user is None


@pytest.mark.parametrize(
    "forge",
    [
        lambda token, nonce: (
            token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        ),  # tampered
        lambda token, nonce: signing.dumps({"t": "T1", "u": "U6", "n": nonce}),  # another salt
        lambda token, nonce: signing.dumps(
            {"t": "T1", "u": "U6", "n": nonce}, salt="x", key="k" * 50
        ),
        lambda token, nonce: signing.dumps(
            {"t": "T1", "u": "U1", "n": "guessed"}, salt=linking.LINK_SALT
        ),
        lambda token, nonce: signing.dumps(
            ["T1", "U6", nonce], salt=linking.LINK_SALT
        ),  # malformed
        lambda token, nonce: "garbage",
        lambda token, nonce: "x" * 5000,
    ],
)
def test_a_forged_tampered_or_malformed_link_is_refused(configured, slack, ada, forge):
    path = _link_for(slack)
    SlackIdentity.objects.create(team_id="T1", slack_user_id="U1", link_nonce="real-nonce")
    nonce = SlackIdentity.objects.get(slack_user_id="U6").link_nonce
    forged = forge(path.removeprefix("/slack/link/"), nonce)
    browser = Client()
    browser.force_login(ada)
    response = browser.post(f"/slack/link/{forged}")
    assert response.status_code in (400, 410)
    assert not SlackIdentity.objects.filter(user=ada).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SLACK_LINKED).exists()


# --- item 11: what goes out to Slack ---------------------------------------------------------

HOSTILE = "<!channel> <!here> <@U123> | > & <https://evil.example|click>"


def _links(text: str) -> list[str]:
    return re.findall(r"<[^<>]*>", text)


def _assert_no_control_sequences(text: str) -> None:
    """Every ``<...>`` left is one of our links: a web URL and one label, nothing else."""
    for found in _links(text):
        assert re.fullmatch(r"<https?://[^|<>\s]+\|[^|<>]+>", found), found
        assert "evil.example|" not in found


def test_hostile_titles_urls_and_answers_cannot_ping_the_channel_or_inject_links(
    configured, slack, llm, ada, make_user
):
    hostile = index_text(
        make_collection("Open", everyone=True),
        "hostile.md",
        f"# Title {HOSTILE}\n\n## Section {HOSTILE}\n\nEveryone books trains and flights in the portal.",
        user=make_user(email="kadmin@example.com", is_staff=True),
    )
    Source.objects.filter(pk=hostile.pk).update(
        url="https://docs.example/a|<!channel>>b?x=1&y=<@U123>"
    )
    Document.objects.filter(source=hostile).update(title=f"Title {HOSTILE}")
    llm.script(
        Reply(
            tokens=[
                f"Answer {HOSTILE} and [see **this** | <!here>](https://x.example/p|<!channel>) [1]."
            ]
        )
    )
    post_event(configured, direct_message("how do I book trains?", event_id="EvHostile"))
    (update,) = slack.calls_to("chat.update")
    texts = [update.params["text"]] + [
        element["text"]
        for block in update.params["blocks"]
        for element in ([block.get("text")] if block.get("text") else block.get("elements", []))
        if isinstance(element, dict) and element.get("type") == "mrkdwn"
    ]
    for text in texts:
        _assert_no_control_sequences(text)
        assert "<!" not in text and "<@" not in text
    everything = "\n".join(texts)
    assert "&lt;!channel&gt;" in everything and "&amp;" in everything
    assert "<https://docs.example/a%7C%3C!channel%3E%3Eb?x=1&amp;y=%3C@U123%3E|" in everything
    assert "<https://x.example/p%7C%3C!channel%3E|see **this** &lt;!here&gt;>" in everything
    assert update.params["unfurl_links"] is False and update.params["unfurl_media"] is False


def test_a_slash_command_answer_is_escaped_and_not_unfurled(
    configured, slack, llm, ada, public_knowledge
):
    from urllib.parse import urlencode

    llm.script(Reply(tokens=[f"Hi {HOSTILE} [1]."]))
    body = urlencode(
        {
            "command": "/ask",
            "text": "trains?",
            "user_id": "U1",
            "team_id": "T1",
            "response_url": slack.response_url("h"),
            "trigger_id": "trig-h",
            "channel_id": "C1",
        }
    )
    configured.post(
        "/slack/commands",
        data=body,
        content_type="application/x-www-form-urlencoded",
        **signed(body),
    )
    (answer,) = slack.calls_to("respond")
    _assert_no_control_sequences(answer.params["text"])
    assert "<!" not in json.dumps(answer.params)
    assert answer.params["unfurl_links"] is False and answer.params["unfurl_media"] is False


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("https://a.example/x|<!channel>", "ok"),
        ("https://a.example/x>y <!here>", "ok"),
        ("https://a.example/\n<!channel>", "ok"),
        ("https://a.example/", "a|b <!channel> >"),
        ("javascript:alert(1)//|<!channel>", "click"),
        ("slack://channel?id=C1", "open"),
    ],
)
def test_a_link_built_for_slack_has_one_url_and_one_label(url, label):
    text = formatting.link(url, label)
    assert "<!" not in text and text.count("|") <= 1
    _assert_no_control_sequences(text)


def test_truncation_never_leaves_half_a_link_or_entity():
    text = formatting.to_mrkdwn("x" * 2890 + " [label](https://a.example/long/path) & more")
    cut = formatting.truncate(text)
    assert len(cut) <= formatting.MAX_TEXT + 1 and cut.count("<") == cut.count(">")
    assert not re.search(r"&[a-z]{0,3}…$", cut)


def test_a_slack_user_asking_too_fast_is_told_so_and_not_answered(
    configured, slack, llm, ada, public_knowledge
):
    before = len(llm.requests)
    with override_settings(CHAT_RATE_LIMIT_PER_MINUTE=1):
        post_event(configured, direct_message("trains?", event_id="EvR1", ts="1700000001.000001"))
        post_event(configured, direct_message("planes?", event_id="EvR2", ts="1700000002.000001"))
    assert len(streamed(llm, before)) == 1
    assert len(slack.calls_to("chat.update")) == 1
    refusal = [c for c in slack.calls_to("chat.postMessage") if "too fast" in c.params["text"]]
    assert len(refusal) == 1 and refusal[0].params["thread_ts"] == "1700000002.000001"
    assert SlackEventReceipt.objects.get(key="event:EvR2").status == "ignored"


# --- item 2: a channel reads the answer --------------------------------------------------------


def test_a_channel_answer_carries_no_memory_history_or_summary_only_the_quoted_thread(
    configured, slack, llm, ada, public_knowledge
):
    slack.users["U2"] = {"email": "bob@example.com", "name": "Bob"}
    memory_services.remember(user=ada, text="My salary is 123456 and I travel by train to Zurich")
    web = Conversation.objects.create(owner=ada, title="Private")
    Message.objects.create(conversation=web, role="user", content="WEB-SECRET trains to my doctor")
    thread = "1700000000.000050"
    # The thread's conversation, continued earlier (and summarised) with private turns.
    mine = Conversation.objects.create(
        owner=ada,
        origin="slack",
        slack_team="T1",
        slack_channel="C1",
        slack_thread_ts=thread,
        summary="SUMMARY-SECRET about trains",
    )
    Message.objects.create(
        conversation=mine, role="user", content="HISTORY-SECRET trains to my lawyer"
    )
    slack.threads[thread] = [
        {"user": "U2", "text": "Do trains count as travel? BOB-ASKS", "ts": thread},
        {
            "user": "UBOT",
            "bot_id": "BBOT",
            "text": "Earlier bot reply BOT-SAID",
            "ts": "1700000000.000060",
        },
        {"user": "U1", "text": "<@UBOT> how do I book trains?", "ts": "1700000000.000070"},
    ]
    before = len(llm.requests)
    post_event(
        configured,
        mention(
            "<@UBOT> how do I book trains?",
            event_id="EvShared",
            ts="1700000000.000070",
            thread_ts=thread,
        ),
    )
    (request,) = streamed(llm, before)
    prompt = json.dumps(request.body["messages"])
    assert "Bob: Do trains count as travel? BOB-ASKS" in prompt
    assert "assistant: Earlier bot reply BOT-SAID" in prompt
    for secret in ("salary", "WEB-SECRET", "HISTORY-SECRET", "SUMMARY-SECRET"):
        assert secret not in prompt, secret
    # Bob's words are quoted context, never a turn of the asker's.
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]
    assert not mine.messages.filter(content__contains="BOB-ASKS").exists()
