"""The model fails, seen in Chromium (issue 15, fault 5): a real Daphne and a scripted model that
cuts its answer off, or is down before its first token. The page keeps what was written, says
what happened, and its "Try again" regenerates into a complete answer."""

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

CUT_OFF = "How far ahead do I book a flight?"
DOWN = "Which class do I book flights in?"
PARTIAL = ["Book through ", "the travel desk ", "at least fourteen ", "days ahead [1]."]
COMPLETE = "Book through the travel desk at least fourteen days ahead [1]."


def last_answer(page):
    return page.locator(".message-answer").last


def ask(page, text: str) -> None:
    page.fill("#question", text)
    page.press("#question", "Enter")


def test_an_answer_cut_off_mid_stream_keeps_its_text_and_try_again_completes_it(
    chat_server, page, reader, handbook, answers, screenshot
):
    answers.set(CUT_OFF, Reply.dropped(PARTIAL, after=2, delay=0.05), Reply(tokens=[COMPLETE]))
    log_in(page, chat_server, reader.email)

    ask(page, CUT_OFF)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "failed", timeout=15_000)
    expect(answer.locator(".answer-body")).to_have_text("Book through the travel desk")
    status = answer.locator(".answer-status")
    expect(status).to_have_attribute("data-kind", "error")
    expect(status).to_contain_text("interrupted")
    expect(answer.locator(".source-note").first).to_have_text("found, not used in an answer")
    retry = answer.locator('.answer-retry [data-action="try-again"]')
    expect(retry).to_be_visible()
    screenshot(page, "chat-model-cut-off")

    # A reload shows the same: the partial text is stored as failed.
    page.reload()
    wait_until_connected(page)
    answer = last_answer(page)
    expect(answer.locator(".answer-body")).to_have_text("Book through the travel desk")
    expect(answer.locator(".answer-status")).to_contain_text("interrupted")

    answer.locator('.answer-retry [data-action="try-again"]').click()
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(answer.locator(".answer-body")).to_contain_text("fourteen days ahead")
    expect(answer.locator(".cite-chip")).to_have_count(1)
    expect(answer.locator(".answer-retry")).to_be_hidden()
    expect(answer.locator(".answer-status")).to_be_hidden()
    stored = Message.objects.filter(role=Message.Role.ASSISTANT).order_by("created_at")
    assert [(m.status, m.superseded) for m in stored] == [("failed", True), ("complete", False)]
    assert page.problems == [], page.problems


def test_a_model_down_before_its_first_token_quotes_the_passages_and_try_again_asks_it(
    chat_server, page, reader, handbook, answers, screenshot
):
    answers.set(DOWN, Reply.error(503, "model is down"), Reply(tokens=["Economy class [1]."]))
    log_in(page, chat_server, reader.email)

    ask(page, DOWN)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    note = answer.locator(".answer-extractive")
    expect(note).to_contain_text("The language model was unavailable")
    expect(answer.locator(".answer-body")).to_contain_text("isn't available right now")
    expect(answer.locator(".answer-body blockquote").first).to_contain_text("travel desk")
    # Each quoted passage carries its citation chip, which opens the passage.
    chips = answer.locator(".answer-body .cite-chip")
    expect(chips.first).to_be_visible()
    expect(answer.locator(".answer-retry")).to_be_hidden()  # the note has its own button
    screenshot(page, "chat-extractive-answer")
    chips.first.click()
    expect(page.locator("[data-citation-panel] [data-panel-quote]")).to_contain_text("travel desk")

    page.reload()
    wait_until_connected(page)
    answer = last_answer(page)
    expect(answer.locator(".answer-extractive")).to_be_visible()

    answer.locator('.answer-extractive [data-action="try-again"]').click()
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(answer.locator(".answer-body")).to_have_text("Economy class 1.")
    expect(answer.locator(".answer-extractive")).to_be_hidden()
    fresh = Message.objects.get(role=Message.Role.ASSISTANT, superseded=False)
    assert fresh.model != "extractive" and fresh.content == "Economy class [1]."
    assert page.problems == [], page.problems
