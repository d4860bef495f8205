"""A Slack conversation opened on the chat page: a question asked there starts a new web
conversation, so nothing of the web reaches the channel (the in-process rules are in
tests/security/test_private_context.py). Real Chromium, Daphne and a scripted model."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from assistant.models import Conversation
from tests.support import scenarios
from tests.support.browser import log_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_the_chat_page_moves_a_question_asked_in_a_slack_conversation_to_a_new_one(
    make_user, chat_server, page
):
    user, slack = scenarios.slack_asker(make_user)
    question = "Where is the nearest printer?"  # nothing found: answered without the model
    log_in(page, chat_server, user.email)
    page.goto(f"{chat_server}/c/{slack.pk}")
    expect(page.locator(".message-answer", has_text="EARLIERANSWER")).to_have_count(1)

    page.fill("#question", question)
    page.press("#question", "Enter")
    expect(page.locator(".message-answer").last).to_have_attribute("data-status", "complete")

    fresh = Conversation.objects.exclude(pk=slack.pk).get(owner=user)
    expect(page).to_have_url(f"{chat_server}/c/{fresh.pk}")
    expect(page.locator(".message-question .question-text")).to_have_text([question])
    expect(page.locator(".message-answer", has_text="EARLIERANSWER")).to_have_count(0)
    assert page.problems == [], page.problems
