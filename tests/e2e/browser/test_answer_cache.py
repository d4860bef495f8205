"""An identical question asked again is answered at once, says so, and can be asked afresh
(issue 12, section 5). Real Chromium, Daphne and a scripted model that counts its calls."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from assistant.models import Message
from tests.support.browser import log_in, wait_until_connected
from tests.support.openai_server import Reply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

QUESTION = "How far ahead must flights be booked through the travel desk?"
FIRST = "Book through the travel desk at least fourteen days before departure [1]."
FRESH = "Flights are booked through the travel desk fourteen days before departure [1]."


def last_answer(page):
    return page.locator(".message-answer").last


def asked(llm_server) -> int:
    return sum(
        1
        for r in llm_server.requests
        if (r.body.get("messages") or [{}])[-1].get("content") == QUESTION
    )


def test_a_repeated_question_is_answered_from_the_cache_and_can_be_asked_afresh(
    chat_server, page, reader, handbook, answers, llm_server
):
    answers.set(QUESTION, Reply(tokens=[FIRST]), Reply(tokens=[FRESH]))
    before = asked(llm_server)
    log_in(page, chat_server, reader.email)
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    expect(last_answer(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(last_answer(page).locator(".answer-cached")).to_be_hidden()

    page.click('[data-action="new-chat"]')
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(answer.locator(".answer-body")).to_contain_text("fourteen days before departure")
    mark = answer.locator(".answer-cached")
    expect(mark).to_contain_text("Answered from an identical recent question")
    expect(answer.locator(".sources-list .source-item").first).to_be_visible()
    assert asked(llm_server) == before + 1  # the second answer cost no model call

    # After a reload the mark is still there (from the conversation API).
    page.reload()
    wait_until_connected(page)
    expect(last_answer(page).locator(".answer-cached")).to_be_visible()

    last_answer(page).locator('[data-action="ask-afresh"]').click()
    expect(last_answer(page).locator(".answer-body")).to_contain_text(
        "Flights are booked through", timeout=15_000
    )
    expect(last_answer(page)).to_have_attribute("data-status", "complete")
    expect(last_answer(page).locator(".answer-cached")).to_be_hidden()
    assert asked(llm_server) == before + 2
    fresh = Message.objects.filter(role=Message.Role.ASSISTANT, superseded=False).latest(
        "created_at"
    )
    assert not fresh.from_cache and fresh.content == FRESH
    assert page.problems == [], page.problems
